package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/config"
	"github.com/cognito-authz/cognito-authz/pkg/devissuer"
	"github.com/cognito-authz/cognito-authz/pkg/extauthz"
	"github.com/cognito-authz/cognito-authz/pkg/runtime"
	"github.com/cognito-authz/cognito-authz/pkg/server"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// devIssuerAddr is where `serve -dev` serves the dev issuer and where `token` looks for it.
const devIssuerAddr = "127.0.0.1:9099"

func serveCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	path := fs.String("config", configPath(), "config file (default $COGNITO_AUTHZ_CONFIG)")
	dev := fs.Bool("dev", false, "run an embedded dev issuer and trust it: no AWS account needed (never in production)")
	devAddr := fs.String("dev-issuer-addr", devIssuerAddr, "dev issuer listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var iss *devissuer.Issuer
	var amend func(*config.Config)
	if *dev {
		var err error
		if iss, err = devissuer.New(); err != nil {
			return err
		}
		if _, err := iss.Serve(ctx, *devAddr); err != nil {
			return err
		}
		// The dev pool is added before the file is validated, so a file without pools is valid with -dev.
		amend = func(c *config.Config) {
			c.Pools = slices.DeleteFunc(c.Pools, func(p config.Pool) bool { return p.Name == "dev" })
			c.Pools = append(c.Pools, config.Pool{Name: "dev", Issuer: iss.URL, ClientIDs: []string{iss.ClientID}, TokenUse: "any"})
		}
	}
	var cfg *config.Config
	var loader *runtime.Loader
	switch {
	case *path != "":
		// A reload reads the file as start-up did: the dev pool and the environment apply again.
		loader = &runtime.Loader{Path: *path, Env: os.LookupEnv, Amend: amend}
		c, err := loader.Load()
		if err != nil {
			return err
		}
		cfg = c
	case *dev:
		c := config.Default()
		c.Server.GRPCAddr, c.Server.AdminAddr, c.Log.Format = "127.0.0.1:9001", "127.0.0.1:9090", "text"
		amend(&c)
		dir, err := devBrowser(&c, iss)
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir) // the session key dies with the process: sessions end with it
		c.OverrideEnv(os.LookupEnv)
		if err := runtime.Validate(&c); err != nil {
			return err
		}
		cfg = &c
	default:
		return errors.New("-config FILE (or $COGNITO_AUTHZ_CONFIG) is required; -dev runs without one")
	}
	log := newLogger(cfg.Log, stderr)
	o := serveOptions{loader: loader, listening: func(srv *server.Server, _ *runtime.Reloader) {
		if iss != nil {
			devBanner(stdout, iss, srv)
		}
	}}
	return serve(ctx, cfg, log, o)
}

// devHTTPAddr is the HTTP protocol's address in `serve -dev`, where a browser can try sign-in directly.
const devHTTPAddr = "127.0.0.1:9002"

// devBrowser turns browser sign-in on for `serve -dev` without a config file: the dev issuer's Hosted UI,
// the app on http://localhost:9002 (the HTTP protocol itself, answering as Envoy's HTTP ext_authz would),
// a login rule for /app, and a fresh session key, in the temporary directory it returns (the caller removes
// it).
func devBrowser(c *config.Config, iss *devissuer.Issuer) (string, error) {
	k := make([]byte, 32)
	rand.Read(k)
	dir, err := os.MkdirTemp("", "cognito-authz-dev-")
	if err != nil {
		return "", err
	}
	keys := filepath.Join(dir, "session-keys")
	if err := os.WriteFile(keys, []byte(base64.StdEncoding.EncodeToString(k)+"\n"), 0o600); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	_, port, _ := net.SplitHostPort(devHTTPAddr)
	app := "localhost:" + port
	c.Server.HTTPAddr = devHTTPAddr
	c.Rules = append(c.Rules, config.Rule{Name: "dev-app", Action: "login", Match: config.Match{PathPrefix: "/app"}})
	c.Browser = &config.Browser{Domain: iss.DomainURL(), ClientID: iss.ClientID, Pool: "dev", AllowedHosts: []string{app},
		LogoutRedirect: "http://" + app + "/", LogoutGET: true, SessionKeysFile: keys, InsecureHTTP: true}
	c.Browser.Defaults()
	return dir, nil
}

// devBanner prints a valid token and ready-to-paste commands for an allow and two denies.
func devBanner(w io.Writer, iss *devissuer.Issuer, srv *server.Server) {
	tok, err := iss.Mint(iss.Access())
	if err != nil {
		fmt.Fprintf(w, "dev issuer: cannot mint: %v\n", err)
		return
	}
	self := os.Args[0]
	tampered := tok[:len(tok)-4] + "AAAA"
	fmt.Fprintf(w, `
cognito-authz is running in dev mode (embedded issuer %s: never use -dev in production).

A valid access token for user alice (group users), valid for one hour:

  %s

Try an allow (prints the identity headers the upstream would get):
  %s check -addr %s -token %s

Try denies (no token: 401 token_missing; tampered signature: 401 signature_invalid):
  %s check -addr %s
  %s check -addr %s -token %s

Mint more:  %s token -username bob -groups admins,users -token-use id
Readiness:  curl -s http://%s/readyz

`, iss.URL, tok, self, srv.GRPCAddr(), tok, self, srv.GRPCAddr(), self, srv.GRPCAddr(), tampered, self, srv.AdminAddr())
	if a := srv.HTTPAddr(); a != "" {
		_, port, _ := net.SplitHostPort(a)
		fmt.Fprintf(w, `Browser sign-in (the dev issuer's Hosted UI; rule dev-app: path_prefix /app, action login):
  open http://localhost:%s/app/hello?x=1 in a browser: any user name and non-empty password sign in, and
  you land back on that URL; the blank 200 is the allow (the identity headers are in its response headers,
  as a proxy would copy them upstream). Sign out: http://localhost:%s/_authz/logout
  Without a session, a program gets 401 JSON: curl -si http://localhost:%s/app/hello
  Behind a real proxy, see README "Browser sign-in" (Caddy, Envoy, Istio, nginx).

`, port, port, port)
	}
}

func configCheckCmd(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlags("config check", stderr)
	path := fs.String("config", configPath(), "config file (default $COGNITO_AUTHZ_CONFIG)")
	if err := fs.Parse(args); err != nil {
		return exitError, err
	}
	if *path == "" {
		return exitError, errors.New("-config FILE is required")
	}
	// What serve runs: the same load, validation and build (nothing is fetched).
	cfg, err := runtime.Loader{Path: *path, Env: os.LookupEnv}.Load()
	var g *runtime.Generation
	if err == nil {
		g, err = runtime.Build(cfg, runtime.Options{})
	}
	if err != nil {
		fmt.Fprintf(stdout, "%s: invalid\n", *path)
		// One line per problem. Load prefixes the joined problems with the path, which would land on the
		// first line only; the path is already on the line above.
		problems := []error{err}
		var joined interface{ Unwrap() []error }
		if errors.As(err, &joined) {
			problems = joined.Unwrap()
		}
		for _, p := range problems {
			for _, line := range strings.Split(p.Error(), "\n") {
				fmt.Fprintf(stdout, "  - %s\n", line)
			}
		}
		return exitDenied, nil
	}
	fmt.Fprintf(stdout, "%s: ok (%d pools, %d rules, %d identity headers)\n", *path, len(cfg.Pools), len(cfg.Rules), len(g.Headers.Names()))
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(stdout, "  warning: %s\n", w)
	}
	return exitOK, nil
}

// headerFlags collects repeated -header k=v flags.
type headerFlags map[string]string

func (h headerFlags) String() string { return fmt.Sprint(map[string]string(h)) }
func (h headerFlags) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want name=value, got %q", s)
	}
	h[strings.ToLower(strings.TrimSpace(k))] = v
	return nil
}

func probeFlags(fs *flag.FlagSet) (*extauthz.Probe, *string) {
	p := &extauthz.Probe{Headers: headerFlags{}, ContextExtensions: headerFlags{}}
	tok := fs.String("token", "", "bearer token to send in Authorization")
	fs.StringVar(&p.Method, "method", "GET", "request method")
	fs.StringVar(&p.Path, "path", "/", "request path (with query)")
	fs.StringVar(&p.Host, "host", "localhost", "request host")
	fs.Var(headerFlags(p.Headers), "header", "request header name=value (repeatable)")
	fs.Var(headerFlags(p.ContextExtensions), "context", "route context extension key=value (repeatable)")
	return p, tok
}

func checkCmd(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlags("check", stderr)
	addr := fs.String("addr", "127.0.0.1:9001", "cognito-authz gRPC address")
	timeout := fs.Duration("timeout", 3*time.Second, "deadline of the Check")
	p, tok := probeFlags(fs)
	if err := fs.Parse(args); err != nil {
		return exitError, err
	}
	if *tok != "" {
		p.Headers[token.AuthorizationHeader] = "Bearer " + *tok
	}
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return exitError, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	resp, err := extauthz.Check(ctx, conn, *p)
	if err != nil {
		return exitError, fmt.Errorf("check %s: %w", *addr, err)
	}
	return printSummary(stdout, extauthz.Summarize(resp)), nil
}

func printSummary(w io.Writer, s extauthz.Summary) int {
	if s.Allowed {
		fmt.Fprintln(w, "ALLOW")
		for _, h := range s.Set {
			fmt.Fprintf(w, "  + %s\n", h)
		}
		for _, h := range s.Remove {
			fmt.Fprintf(w, "  - %s\n", h)
		}
		return exitOK
	}
	fmt.Fprintf(w, "DENY %d %s (gRPC %s)\n", s.HTTPStatus, s.Reason, s.Code)
	for _, h := range s.Set {
		fmt.Fprintf(w, "  %s\n", h)
	}
	fmt.Fprintf(w, "  body: %s\n", strings.TrimSpace(s.Body))
	return exitDenied
}

func verifyCmd(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlags("verify", stderr)
	path := fs.String("config", configPath(), "config file (default $COGNITO_AUTHZ_CONFIG)")
	tok := fs.String("token", "", "the token to verify (- reads it from stdin)")
	if err := fs.Parse(args); err != nil {
		return exitError, err
	}
	if *path == "" || *tok == "" {
		return exitError, errors.New("-config FILE and -token TOKEN are required")
	}
	if *tok == "-" {
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
		if err != nil {
			return exitError, err
		}
		*tok = strings.TrimSpace(string(b))
	}
	cfg, err := runtime.Loader{Path: *path, Env: os.LookupEnv}.Load()
	if err != nil {
		return exitError, err
	}
	// verify judges the token alone, whatever route rules the file has.
	cfg.Rules, cfg.Default = nil, "authenticated"
	g, err := runtime.Build(cfg, runtime.Options{Logger: newLogger(config.Log{Level: "error", Format: "text"}, stderr)})
	if err != nil {
		return exitError, err
	}
	for _, k := range g.Keys {
		if err := k.Set.Refresh(ctx); err != nil {
			fmt.Fprintf(stderr, "pool %s: %v\n", k.Pool, err)
		}
	}
	d := g.Authorizer.Check(ctx, &authz.Request{Method: "GET", Path: "/", Headers: presented(cfg.Token.Sources[0], *tok)})
	if d.Err != nil {
		fmt.Fprintf(stdout, "cause: %v\n", d.Err)
	}
	return printSummary(stdout, extauthz.Summarize(extauthz.Response(&d))), nil
}

// presented is a request's headers holding tok where src reads it: verify judges the token as the service
// would see it from a client that sends it in the first configured place.
func presented(src config.TokenSource, tok string) token.HeaderMap {
	if src.Cookie != "" {
		return token.HeaderMap{"cookie": src.Cookie + "=" + tok}
	}
	p := src.Prefix
	if p != "" && !strings.HasSuffix(p, " ") {
		p += " " // a scheme is followed by a space (RFC 9110 §11.4), whether or not the config wrote it
	}
	return token.HeaderMap{src.Header: p + tok}
}

func tokenCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("token", stderr)
	issuer := fs.String("issuer-url", "http://"+devIssuerAddr, "base URL of a running dev issuer (serve -dev)")
	fields := map[string]*string{
		"sub":       fs.String("sub", "", "subject (default: alice's)"),
		"username":  fs.String("username", "", "username (default alice)"),
		"groups":    fs.String("groups", "", "comma-separated cognito:groups (default users)"),
		"scopes":    fs.String("scopes", "", "space-separated scopes (access tokens)"),
		"token_use": fs.String("token-use", "access", "access or id"),
		"email":     fs.String("email", "", "email (id tokens)"),
		"ttl":       fs.String("ttl", "1h", "lifetime"),
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	form := url.Values{}
	for k, v := range fields {
		if *v != "" {
			form.Set(k, *v)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(*issuer, "/")+"/mint", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("is `cognito-authz serve -dev` running? %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("dev issuer answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	fmt.Fprint(stdout, string(body))
	return nil
}
