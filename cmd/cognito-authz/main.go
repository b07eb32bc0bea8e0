// Command cognito-authz is an Envoy external-authorization service for AWS Cognito.
//
//	cognito-authz [serve] -config FILE        run the service (also: serve -dev, on an embedded issuer)
//	cognito-authz config check -config FILE   validate a config file; exit 0 if valid, 1 if not
//	cognito-authz check -addr ADDR -token T   send an Envoy-shaped CheckRequest and print the decision
//	cognito-authz verify -config FILE -token T   verify a token against the config's pools, no server
//	cognito-authz token [-sub ...]            mint a token from a running dev issuer
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// exit codes
const (
	exitOK     = 0
	exitDenied = 1 // check: the request was denied; config check: the file is invalid
	exitError  = 2
)

const usage = `usage:
  cognito-authz [serve] -config FILE [-dev]
  cognito-authz serve -dev [-dev-issuer-addr 127.0.0.1:9099]
  cognito-authz config check -config FILE
  cognito-authz check -addr 127.0.0.1:9001 -token TOKEN [-path / -method GET -host H -header k=v ...]
  cognito-authz verify -config FILE -token TOKEN
  cognito-authz token [-issuer-url URL] [-sub S -username U -groups a,b -scopes "x y" -token-use access|id -ttl 1h]
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	// -h and --help are the usage, not serve's flags.
	if len(args) > 0 && args[0] != "" && (args[0][0] != '-' || args[0] == "-h" || args[0] == "--help") {
		cmd, args = args[0], args[1:]
	}
	var err error
	code := exitOK
	switch cmd {
	case "serve":
		err = serveCmd(ctx, args, stdout, stderr)
	case "config":
		if len(args) == 0 || args[0] != "check" {
			fmt.Fprint(stderr, usage)
			return exitError
		}
		code, err = configCheckCmd(args[1:], stdout, stderr)
	case "check":
		code, err = checkCmd(ctx, args, stdout, stderr)
	case "verify":
		code, err = verifyCmd(ctx, args, stdout, stderr)
	case "token":
		err = tokenCmd(ctx, args, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "cognito-authz: unknown command %q\n%s", cmd, usage)
		return exitError
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitError
	case err != nil:
		fmt.Fprintf(stderr, "cognito-authz %s: %v\n", cmd, err)
		return exitError
	}
	return code
}

// configPath returns the -config default: $COGNITO_AUTHZ_CONFIG, or empty.
func configPath() string { return os.Getenv("COGNITO_AUTHZ_CONFIG") }

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("cognito-authz "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}
