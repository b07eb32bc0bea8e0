package runtime_test

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cognito-authz/cognito-authz/pkg/config"
	"github.com/cognito-authz/cognito-authz/pkg/runtime"
	"github.com/cognito-authz/cognito-authz/pkg/testkit"
)

// TestBuildBrowser: Build maps the browser: block onto a flow, reading the keys file each time (so a
// reload re-reads it), and refuses what session.New refuses, so config check and serve agree.
func TestBuildBrowser(t *testing.T) {
	t.Parallel()
	iss := testkit.Start(t)
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	if err := os.WriteFile(keys, []byte(base64.StdEncoding.EncodeToString(make([]byte, 32))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad-keys")
	os.WriteFile(bad, []byte("not base64 at all\n"), 0o600)
	tests := []struct {
		name    string
		mod     func(*config.Browser)
		wantErr string
	}{
		{name: "valid"},
		{name: "keys_file_missing", mod: func(b *config.Browser) { b.SessionKeysFile = filepath.Join(dir, "none") }, wantErr: "browser: session_keys_file"},
		{name: "keys_file_bad", mod: func(b *config.Browser) { b.SessionKeysFile = bad }, wantErr: "browser: session_keys_file"},
		{name: "callback_path_relative", mod: func(b *config.Browser) { b.CallbackPath = "cb" }, wantErr: "callback_path"},
		{name: "http_endpoint_not_loopback", mod: func(b *config.Browser) { b.Domain = "http://idp.example.com" }, wantErr: "want an https URL"},
		{name: "secret_file_missing", mod: func(b *config.Browser) { b.ClientSecretFile = filepath.Join(dir, "none") }, wantErr: "client_secret_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := devConfig(iss)
			c.Browser = &config.Browser{Domain: iss.DomainURL(), ClientID: iss.ClientID, Pool: "main",
				AllowedHosts: []string{"app.example.com"}, SessionKeysFile: keys}
			c.Browser.Defaults()
			if tt.mod != nil {
				tt.mod(c.Browser)
			}
			g, err := runtime.Build(c, runtime.Options{})
			if tt.wantErr == "" {
				if err != nil || g.Session == nil {
					t.Fatalf("Build = %v, session %v", err, g)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Build error = %v, want one naming %q", err, tt.wantErr)
			}
		})
	}
}
