package runtime_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/cognito-authz/cognito-authz/pkg/config"
	"github.com/cognito-authz/cognito-authz/pkg/devissuer"
	"github.com/cognito-authz/cognito-authz/pkg/jwks"
	"github.com/cognito-authz/cognito-authz/pkg/runtime"
	"github.com/cognito-authz/cognito-authz/pkg/testkit"
)

func devConfig(iss *devissuer.Issuer) *config.Config {
	c := config.Default()
	c.Pools = []config.Pool{{Name: "main", Issuer: iss.URL, ClientIDs: []string{iss.ClientID}, TokenUse: "any"}}
	return &c
}

// TestApplyKeepsSetsBuiltTheSame: a reload keeps a pool's running key set exactly when the set would be
// built with the same options, so a changed jwks setting is never left with a set built the old way.
func TestApplyKeepsSetsBuiltTheSame(t *testing.T) {
	t.Parallel()
	iss := testkit.Start(t)
	ctx, cancel := context.WithCancel(t.Context())
	live, err := runtime.Start(ctx, devConfig(iss), runtime.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); live.Wait() })
	set := func() *jwks.Set { return live.Current().Keys[0].Set }

	tests := []struct {
		name     string
		change   func(*config.Config)
		wantSame bool
		wantKept int
	}{
		{name: "unchanged", change: func(*config.Config) {}, wantSame: true, wantKept: 1},
		{name: "client_ids_only_change_the_verifier", change: func(c *config.Config) { c.Pools[0].ClientIDs = []string{"other"} }, wantSame: true, wantKept: 1},
		{name: "fetch_timeout_changed", change: func(c *config.Config) { c.JWKS.FetchTimeout = config.Duration(2 * time.Second) }},
		{name: "refresh_interval_changed", change: func(c *config.Config) { c.JWKS.RefreshInterval = config.Duration(2 * time.Hour) }},
		{name: "unknown_kid_window_changed", change: func(c *config.Config) { c.JWKS.UnknownKIDWindow = config.Duration(time.Second) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Back to the base config, then the change: each case compares with the base's set.
			if _, err := live.Apply(devConfig(iss)); err != nil {
				t.Fatal(err)
			}
			base := set()
			c := devConfig(iss)
			tt.change(c)
			kept, err := live.Apply(c)
			if err != nil {
				t.Fatal(err)
			}
			if got := set() == base; got != tt.wantSame || kept != tt.wantKept {
				t.Errorf("after the change: same set %v (want %v), kept %d (want %d)", got, tt.wantSame, kept, tt.wantKept)
			}
			if n := live.Running(); n != 1 {
				t.Errorf("%d key sets running, want 1: replaced sets must stop", n)
			}
		})
	}
}
