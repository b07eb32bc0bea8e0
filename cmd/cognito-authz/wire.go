package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"google.golang.org/grpc"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/config"
	"github.com/cognito-authz/cognito-authz/pkg/extauthz"
	"github.com/cognito-authz/cognito-authz/pkg/jwks"
	"github.com/cognito-authz/cognito-authz/pkg/metrics"
	"github.com/cognito-authz/cognito-authz/pkg/policy"
	"github.com/cognito-authz/cognito-authz/pkg/server"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// newLogger makes the service's logger: JSON in production, text in dev.
func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.Level)) // validated by config
	o := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, o))
	}
	return slog.New(slog.NewJSONHandler(w, o))
}

// app is the service wired from a config: key sets, verifier, authorizer.
type app struct {
	sets       []*jwks.Set
	authorizer *authz.Authorizer
}

// keysFunc gives the key set of a pool: a new one, or (on reload) the one already loaded for it.
type keysFunc func(cfg *config.Config, p config.Pool) (*jwks.Set, error)

// newKeys makes a new, unloaded key set for p; m, when set, is told of every fetch.
func newKeys(log *slog.Logger, m *metrics.Metrics) keysFunc {
	return func(cfg *config.Config, p config.Pool) (*jwks.Set, error) {
		return jwks.New(jwks.Options{
			URL:              p.KeysURL(),
			RefreshInterval:  cfg.JWKS.RefreshInterval.Std(),
			UnknownKIDWindow: cfg.JWKS.UnknownKIDWindow.Std(),
			FetchTimeout:     cfg.JWKS.FetchTimeout.Std(),
			Logger:           log.With("pool", p.Name),
			OnRefresh:        onRefresh(m, p.Name),
			OnRejected:       onRejected(m, p.Name),
		})
	}
}

// build maps the config onto the packages' options. Nothing is fetched: run the sets keys returns to load
// them.
func build(cfg *config.Config, keys keysFunc, m *metrics.Metrics) (*app, error) {
	a := &app{}
	pools := make([]token.Pool, 0, len(cfg.Pools))
	for _, p := range cfg.Pools {
		set, err := keys(cfg, p)
		if err != nil {
			return nil, fmt.Errorf("pool %s: %w", p.Name, err)
		}
		a.sets = append(a.sets, set)
		pools = append(pools, token.Pool{Name: p.Name, Issuers: p.Issuers(), ClientIDs: p.ClientIDs, TokenUse: p.TokenUse, Keys: set})
	}
	pol, err := buildPolicy(cfg)
	if err != nil {
		return nil, err
	}
	id := cfg.Identity
	claimNames := pol.Claims() // requirements read these claims: the verifier must keep them
	for c := range id.Claims {
		claimNames = append(claimNames, c)
	}
	v, err := token.NewVerifier(pools,
		token.WithLeeway(cfg.Token.Leeway.Std()),
		token.WithMaxBytes(cfg.Token.MaxBytes),
		token.WithClaims(claimNames...))
	if err != nil {
		return nil, err
	}
	sources := make([]token.Source, len(cfg.Token.Sources))
	for i, s := range cfg.Token.Sources {
		sources[i] = token.Source{Header: s.Header, Prefix: s.Prefix, Cookie: s.Cookie}
	}
	a.authorizer, err = authz.New(authz.Options{
		Verifier: v,
		Policy:   pol,
		Sources:  sources,
		MaxBytes: cfg.Token.MaxBytes,
		Headers: authz.IdentityHeaders{
			Sub: id.Sub, Username: id.Username, Groups: id.Groups, Scopes: id.Scopes, ClientID: id.ClientID,
			TokenUse: id.TokenUse, Email: id.Email, Pool: id.Pool, Claims: id.Claims,
		},
		ForwardToken: *id.ForwardToken,
		DryRun:       cfg.DryRun,
		// paths.ambiguous: strictest (every rule a reading selects must allow) or reject (400 path_ambiguous).
		RejectAmbiguousPaths: cfg.Paths.Ambiguous == "reject",
		Cache: authz.CacheOptions{
			MaxEntries:  cfg.Cache.MaxEntries,
			MaxBytes:    int64(cfg.Cache.MaxBytes),
			NegativeTTL: cfg.Cache.NegativeTTL.Std(),
			OnHit:       cacheHook(m, (*metrics.Metrics).CacheHit),
			OnMiss:      cacheHook(m, (*metrics.Metrics).CacheMiss),
		},
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// buildPolicy maps config rules onto policy rules.
func buildPolicy(cfg *config.Config) (*policy.Policy, error) {
	def, err := policy.ParseAction(cfg.Default)
	if err != nil {
		return nil, err
	}
	rules := make([]policy.Rule, 0, len(cfg.Rules))
	for _, r := range cfg.Rules {
		action, err := policy.ParseAction(r.Action)
		if err != nil {
			return nil, fmt.Errorf("rule %s: %w", r.Name, err)
		}
		m := r.Match
		pr := policy.Rule{
			Name:   r.Name,
			Action: action,
			Match: policy.Match{Host: m.Host, PathExact: m.PathExact, PathPrefix: m.PathPrefix, PathRegex: m.PathRegex,
				Methods: m.Methods, ContextExtensions: m.ContextExtensions},
			AnonymousOnInvalid: r.OptionalInvalid == "anonymous",
			DryRun:             r.DryRun,
		}
		if m.Method != "" {
			pr.Match.Methods = []string{m.Method}
		}
		if q := r.Require; q != nil {
			pr.Require = policy.Require{Pools: q.Pools, TokenUse: q.TokenUse, GroupsAny: q.GroupsAny, GroupsAll: q.GroupsAll,
				ScopesAny: q.ScopesAny, ScopesAll: q.ScopesAll}
			if len(q.Claims) > 0 {
				pr.Require.Claims = make(map[string][]string, len(q.Claims))
				for k, v := range q.Claims {
					pr.Require.Claims[k] = v
				}
			}
		}
		rules = append(rules, pr)
	}
	return policy.New(rules, def)
}

// serveOptions are the optional parts of serve.
type serveOptions struct {
	// load reads the config again, for reloads; nil turns reloading off.
	load func() (*config.Config, error)
	// watch is the config file to watch for changes ("" watches nothing; SIGHUP still reloads).
	watch string
	// listening, when set, is called once the listeners are bound.
	listening func(*server.Server, *service)
}

// serve runs the key sets and the listeners until ctx ends, reloading the config on SIGHUP and on a change of
// the watched file.
func serve(ctx context.Context, cfg *config.Config, log *slog.Logger, o serveOptions) error {
	m := newMetrics()
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
	forwarded, err := extauthz.ParseForwarded(cfg.Server.HTTPForwarded) // validated: cannot fail
	if err != nil {
		return err
	}
	tlsCfg, reloadTLS, err := listenerTLS(cfg.Server.TLS, log)
	if err != nil {
		return err
	}
	setsCtx, stopSets := context.WithCancel(ctx)
	svc, err := newService(setsCtx, cfg, log, o.load, m)
	if err != nil {
		stopSets()
		return err
	}
	defer svc.wait()
	defer stopSets()
	m.SetCacheEntries(func() int { return svc.authorizer().CacheLen() })
	// Each transport observes (counts, times, logs, applies dry run) the current generation's decisions.
	grpcChecks := authz.NewObserved(svc.authorizer, "grpc", m, log)
	httpChecks := authz.NewObserved(svc.authorizer, "http", m, log)
	srv, err := server.Listen(ctx, server.Options{
		GRPCAddr:  cfg.Server.GRPCAddr,
		HTTPAddr:  cfg.Server.HTTPAddr,
		AdminAddr: cfg.Server.AdminAddr,
		Register: extauthz.NewServer(func() extauthz.Checker { return grpcChecks },
			extauthz.WithIdentityMetadata(cfg.DynamicMetadata.Identity)).Register,
		GRPCOptions: []grpc.ServerOption{extauthz.CodecOption()},
		Limits:      serverLimits(cfg.Server),
		OnStreamCut: m.StreamCut,
		HTTP: extauthz.NewHTTPHandler(func() extauthz.Checker { return httpChecks }, extauthz.HTTPOptions{
			PathPrefix: cfg.Server.HTTPPathPrefix, Forwarded: forwarded, TrustForwarded: cfg.Server.HTTPTrustForwarded,
		}),
		Ready:       svc.ready,
		Logger:      log,
		Metrics:     m.Handler(),
		DrainPeriod: cfg.Server.DrainPeriod.Std(),
		StopTimeout: cfg.Server.ShutdownTimeout.Std(),
		TLS:         tlsCfg,
	})
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	if reloadTLS != nil {
		wg.Go(func() { reloadTLS(setsCtx) })
	}
	if o.load != nil {
		go svc.reloadOn(setsCtx, o.watch)
	}
	log.Info("cognito-authz listening", "grpc", srv.GRPCAddr(), "http", srv.HTTPAddr(), "admin", srv.AdminAddr(),
		"pools", len(cfg.Pools), "rules", len(cfg.Rules))
	if o.listening != nil {
		o.listening(srv, svc)
	}
	err = srv.Serve(ctx)
	log.Info("cognito-authz stopped")
	return err
}

// cacheHook is a cache counter of m (nil without metrics).
func cacheHook(m *metrics.Metrics, count func(*metrics.Metrics)) func() {
	if m == nil {
		return nil
	}
	return func() { count(m) }
}

// onRefresh is the key set's hook into the metrics (nil without metrics).
func onRejected(m *metrics.Metrics, pool string) func(string) {
	if m == nil {
		return nil
	}
	return m.JWKSRejected(pool)
}

func onRefresh(m *metrics.Metrics, pool string) func(string, int) {
	if m == nil {
		return nil
	}
	return m.JWKSRefresh(pool)
}
