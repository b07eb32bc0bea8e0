package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/config"
	"github.com/cognito-authz/cognito-authz/pkg/extauthz"
	"github.com/cognito-authz/cognito-authz/pkg/jwks"
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

// build maps the config onto the packages' options. Nothing is fetched yet: run the sets to load them.
func build(cfg *config.Config, log *slog.Logger) (*app, error) {
	a := &app{}
	pools := make([]token.Pool, 0, len(cfg.Pools))
	for _, p := range cfg.Pools {
		set, err := jwks.New(jwks.Options{
			URL:              p.KeysURL(),
			RefreshInterval:  cfg.JWKS.RefreshInterval.Std(),
			UnknownKIDWindow: cfg.JWKS.UnknownKIDWindow.Std(),
			FetchTimeout:     cfg.JWKS.FetchTimeout.Std(),
			Logger:           log.With("pool", p.Name),
		})
		if err != nil {
			return nil, fmt.Errorf("pool %s: %w", p.Name, err)
		}
		a.sets = append(a.sets, set)
		pools = append(pools, token.Pool{Name: p.Name, Issuers: p.Issuers(), ClientIDs: p.ClientIDs, TokenUse: p.TokenUse, Keys: set})
	}
	id := cfg.Identity
	claimNames := make([]string, 0, len(id.Claims))
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
	a.authorizer, err = authz.New(authz.Options{
		Verifier: v,
		MaxBytes: cfg.Token.MaxBytes,
		Headers: authz.IdentityHeaders{
			Sub: id.Sub, Username: id.Username, Groups: id.Groups, Scopes: id.Scopes, ClientID: id.ClientID,
			TokenUse: id.TokenUse, Email: id.Email, Pool: id.Pool, Claims: id.Claims,
		},
		ForwardToken: *id.ForwardToken,
		Cache: authz.CacheOptions{
			MaxEntries:  cfg.Cache.MaxEntries,
			MaxBytes:    int64(cfg.Cache.MaxBytes),
			NegativeTTL: cfg.Cache.NegativeTTL.Std(),
		},
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// ready reports whether every pool's keys have loaded at least once.
func (a *app) ready() bool {
	for _, s := range a.sets {
		if !s.Ready() {
			return false
		}
	}
	return true
}

// serve runs the key sets and the listeners until ctx ends. listening, when set, is called with the server
// once it is bound.
func serve(ctx context.Context, cfg *config.Config, log *slog.Logger, listening func(*server.Server)) error {
	a, err := build(cfg, log)
	if err != nil {
		return err
	}
	srv, err := server.Listen(ctx, server.Options{
		GRPCAddr:      cfg.Server.GRPCAddr,
		AdminAddr:     cfg.Server.AdminAddr,
		Authorization: extauthz.NewServer(func() extauthz.Checker { return a.authorizer }),
		Ready:         a.ready,
		Logger:        log,
	})
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	setsCtx, stopSets := context.WithCancel(ctx)
	defer stopSets()
	for _, s := range a.sets {
		wg.Go(func() { s.Run(setsCtx) })
	}
	log.Info("cognito-authz listening", "grpc", srv.GRPCAddr(), "admin", srv.AdminAddr(), "pools", len(cfg.Pools))
	if listening != nil {
		listening(srv)
	}
	err = srv.Serve(ctx)
	log.Info("cognito-authz stopped")
	return err
}
