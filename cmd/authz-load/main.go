// Command authz-load measures cognito-authz against the floor of its own gRPC stack: it starts the real
// server process and a no-op ext_authz server process (this binary with -noop-server, on the same gRPC
// server code, answering OK and doing nothing), pins them to CPU 0 and itself to CPU 1 where taskset
// exists, drives each in turn with pregenerated CheckRequests from 50 callers on one HTTP/2 connection, and
// prints one table. Every address is on 127.0.0.1; the keys and JWKS come from an in-process dev issuer.
//
//	go run -tags vtprotobuf ./cmd/authz-load [-rounds 3 -duration 4s -callers 50 -rate 1000 -distinct 100000]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "authz-load: %v\n", err)
		os.Exit(1)
	}
}

type options struct {
	rounds   int
	duration time.Duration
	callers  int
	rate     int
	tokens   int
	invalid  float64
	distinct int
	cacheDir string
	goCmd    string
	only     string
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("authz-load", flag.ContinueOnError)
	noop := fs.String("noop-server", "", "internal: serve a no-op ext_authz server on this address and print it")
	var o options
	fs.IntVar(&o.rounds, "rounds", 3, "rounds per scenario; each round drives the no-op server, then cognito-authz")
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "length of one drive")
	fs.IntVar(&o.callers, "callers", 50, "concurrent callers on the one connection")
	fs.IntVar(&o.rate, "rate", 1000, "requests per second of the fixed-rate latency run")
	fs.IntVar(&o.tokens, "tokens", 1000, "distinct tokens of the cached and uncached scenarios")
	fs.Float64Var(&o.invalid, "invalid", 0.10, "share of bad-signature tokens in the invalid scenario")
	fs.IntVar(&o.distinct, "distinct", 100_000, "distinct tokens of the memory scenario, each sent once (0 skips it)")
	fs.StringVar(&o.cacheDir, "cache-dir", ".cache/authz-load", "where minted tokens and their key are kept between runs (minting 100 000 takes minutes)")
	fs.StringVar(&o.goCmd, "go", "go", "the go command that builds cognito-authz")
	fs.StringVar(&o.only, "only", "", "run only the scenarios whose name contains this text, e.g. \"fixed\" or \"signed-in\"")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *noop != "" {
		return serveNoop(ctx, *noop, os.Stdout)
	}
	return bench(ctx, o, out, slog.New(slog.NewTextHandler(os.Stderr, nil)))
}
