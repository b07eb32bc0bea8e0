package runtime_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/cognito-authz/cognito-authz/pkg/runtime"
	"github.com/cognito-authz/cognito-authz/pkg/testkit"
)

// TestPoll: a poll reloads exactly when the file's content changed since it was last applied (or last
// refused): an unchanged file, a rewrite with the same bytes and an invalid file that was already refused
// change nothing; the next valid content is applied. It is driven by calling Poll, not by waiting.
func TestPoll(t *testing.T) {
	t.Parallel()
	iss := testkit.Start(t)
	path := filepath.Join(t.TempDir(), "config.yaml")
	write := func(action string) {
		t.Helper()
		data := fmt.Sprintf("pools: [{name: main, issuer: %q, client_ids: [%s], token_use: any}]\nrules: [{name: r, action: %s}]\n", iss.URL, iss.ClientID, action)
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("allow")
	loader := runtime.Loader{Path: path}
	cfg, err := loader.Load()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	live, err := runtime.Start(ctx, cfg, runtime.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); live.Wait() })
	r := &runtime.Reloader{Live: live, Loader: loader, Logger: slog.New(slog.DiscardHandler)}
	r.Poll() // records the hash of the file start-up read (Run does this before its first tick)
	rule := func() string { return live.Current().Config.Rules[0].Action }

	steps := []struct {
		name       string
		write      string // "" leaves the file alone; "invalid" writes a broken file
		wantReload bool
		wantAction string
	}{
		{name: "unchanged", wantAction: "allow"},
		{name: "same_bytes_rewritten", write: "allow", wantAction: "allow"},
		{name: "changed", write: "deny", wantReload: true, wantAction: "deny"},
		{name: "invalid_refused", write: "invalid", wantAction: "deny"},
		{name: "invalid_not_retried", wantAction: "deny"},
		{name: "fixed", write: "allow", wantReload: true, wantAction: "allow"},
	}
	for _, st := range steps {
		switch st.write {
		case "":
		case "invalid":
			if err := os.WriteFile(path, []byte("pools: []\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		default:
			write(st.write)
		}
		if got := r.Poll(); got != st.wantReload || rule() != st.wantAction {
			t.Errorf("%s: Poll() = %v, rule action %s; want %v, %s", st.name, got, rule(), st.wantReload, st.wantAction)
		}
	}
}
