package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/config"
	"github.com/cognito-authz/cognito-authz/pkg/extauthz"
	"github.com/cognito-authz/cognito-authz/pkg/runtime"
	"github.com/cognito-authz/cognito-authz/pkg/server"
	"github.com/cognito-authz/cognito-authz/pkg/tracing/otlp"
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

// serveOptions are the optional parts of serve.
type serveOptions struct {
	// loader reads the config again, for reloads (SIGHUP, and a poll of its file's content); nil turns
	// reloading off.
	loader *runtime.Loader
	// listening, when set, is called once the listeners are bound.
	listening func(*server.Server, *runtime.Reloader)
}

// serve runs the key sets and the listeners until ctx ends, reloading the config on SIGHUP and on a change of
// the file's content.
func serve(ctx context.Context, cfg *config.Config, log *slog.Logger, o serveOptions) error {
	stopTracing, err := otlp.Setup(ctx, os.Getenv) // off unless OTEL_TRACES_EXPORTER=otlp
	if err != nil {
		return err
	}
	defer func() {
		// Flush what was recorded; a collector that is down must not hold the shutdown.
		flush, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := stopTracing(flush); err != nil {
			log.Warn("tracing: flush at shutdown failed", "error", err)
		}
	}()
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
	live, err := runtime.Start(setsCtx, cfg, runtime.Options{Logger: log, Metrics: m})
	if err != nil {
		stopSets()
		return err
	}
	defer live.Wait()
	defer stopSets()
	m.SetCacheEntries(func() int { return live.Authorizer().CacheLen() })
	// Each transport observes (counts, times, logs) the decisions of the current generation's authorizer.
	srv, err := server.Listen(ctx, server.Options{
		GRPCAddr:  cfg.Server.GRPCAddr,
		HTTPAddr:  cfg.Server.HTTPAddr,
		AdminAddr: cfg.Server.AdminAddr,
		Register: extauthz.NewServer(authz.NewObserved(live.Authorizer, "grpc", m, log),
			extauthz.WithIdentityMetadata(cfg.DynamicMetadata.Identity)).Register,
		GRPCOptions: []grpc.ServerOption{extauthz.CodecOption()},
		Limits:      serverLimits(cfg.Server),
		OnStreamCut: m.StreamCut,
		HTTP: extauthz.NewHTTPHandler(authz.NewObserved(live.Authorizer, "http", m, log), extauthz.HTTPOptions{
			PathPrefix: cfg.Server.HTTPPathPrefix, Forwarded: forwarded, TrustForwarded: cfg.Server.HTTPTrustForwarded,
		}),
		Ready:       live.Ready,
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
	rl := &runtime.Reloader{Live: live, Logger: log, Metrics: m}
	if o.loader != nil {
		rl.Loader = *o.loader
		wg.Go(func() { rl.Run(setsCtx) })
	}
	log.Info("cognito-authz listening", "grpc", srv.GRPCAddr(), "http", srv.HTTPAddr(), "admin", srv.AdminAddr(),
		"pools", len(cfg.Pools), "rules", len(cfg.Rules))
	if o.listening != nil {
		o.listening(srv, rl)
	}
	err = srv.Serve(ctx)
	log.Info("cognito-authz stopped")
	return err
}
