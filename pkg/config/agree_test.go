package config_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cognito-authz/cognito-authz/pkg/config"
	"github.com/cognito-authz/cognito-authz/pkg/runtime"
)

// problems lists the joined problems of err, each of which must wrap config.ErrInvalid.
func problems(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		return []string{err.Error()}
	}
	var out []string
	for _, e := range joined.Unwrap() {
		if !errors.Is(e, config.ErrInvalid) {
			t.Errorf("problem %q does not wrap ErrInvalid", e)
		}
		out = append(out, e.Error())
	}
	return out
}

// TestCheckAndServeAgree feeds every case of the validation table to what `config check` runs
// (runtime.Validate, then runtime.Build) and to what serve's start-up runs (runtime.Start), and asserts they
// agree: a config check passes exactly the configs serve starts with, and names the one expected problem by
// its key path. (A rule host "[::1]" used to pass config check and stop serve from starting.)
func TestCheckAndServeAgree(t *testing.T) {
	t.Parallel()
	for _, tt := range config.ValidateCases {
		t.Run(tt.Name, func(t *testing.T) {
			t.Parallel()
			c := config.CaseConfig()
			tt.Mutate(c)
			checkErr := runtime.Validate(c)
			if checkErr == nil {
				_, checkErr = runtime.Build(c, runtime.Options{})
			}
			got := problems(t, checkErr)
			if tt.Want == "" && checkErr != nil {
				t.Fatalf("config check: %v, want valid", checkErr)
			}
			if tt.Want != "" && (len(got) != 1 || !strings.Contains(got[0], tt.Want)) {
				t.Fatalf("config check problems = %q, want exactly one containing %q", got, tt.Want)
			}
			if checkErr != nil {
				return // serve's loader refuses what Validate refuses: runtime.Loader.Load is Validate
			}
			ctx, cancel := context.WithCancel(t.Context())
			cancel() // nothing is fetched: the refresh loops end at once
			live, err := runtime.Start(ctx, c, runtime.Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatalf("config check passed but serve's build failed: %v", err)
			}
			live.Wait()
		})
	}
}

// TestLoadReportsEveryProblem: the file's shape problems and its rules' problems come all at once, each
// named by its key path.
func TestLoadReportsEveryProblem(t *testing.T) {
	t.Parallel()
	data := `
log: {level: loud}
pools:
  - name: main
    region: us-east-1
    user_pool_id: eu-west-1_AbC123
    client_ids: [abc123]
    token_use: access
identity: {groups: authorization}
rules:
  - {name: a, match: {path_regex: "(("}, action: permit}
  - {name: b, match: {host: "[::1]"}}
token: {sources: [{cookie: "a b"}]}
`
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := runtime.Loader{Path: path}.Load()
	if !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("Load() error = %v, want it to wrap ErrInvalid", err)
	}
	want := []string{
		`log.level "loud"`,
		`user_pool_id "eu-west-1_AbC123" is not in region "us-east-1"`,
		`identity.groups "authorization" is a header the proxy owns`,
		`token.sources[0].cookie "a b"`,
		`rules[0] (a).action "permit"`,
		`rules[0] (a).match.path_regex: error parsing regexp`,
		`rules[1] (b).match.host: "[::1]"`,
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Load() error = %q, want it to contain %q", err, w)
		}
	}
	if got := problems(t, err); len(got) != len(want) {
		t.Errorf("Load() reported %d problems %q, want %d", len(got), got, len(want))
	}
}
