package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/cognito-authz/cognito-authz/pkg/devissuer"
	"github.com/cognito-authz/cognito-authz/pkg/extauthz"
	"github.com/cognito-authz/cognito-authz/pkg/session"
)

// appHost is the web app of the signed-in scenario: browser sign-in runs there, behind a login rule.
const appHost = "app.example.com"

// browserBlock is what the signed-in server's config adds to configFor's: browser sign-in on appHost
// through the in-process dev issuer's Hosted UI (domain: its base URL on 127.0.0.1, so nothing leaves the
// machine), sessions sealed with the key in keysFile, and a login rule for appHost. Every other host keeps
// the default rule (authenticated).
func browserBlock(domain, keysFile string) string {
	return fmt.Sprintf(`browser:
  domain: %q
  client_id: %s
  pool: load
  allowed_hosts: [%s]
  session_keys_file: %q
rules:
  - {name: web, match: {host: %s}, action: login}
`, domain, devissuer.DefaultClientID, appHost, keysFile, appHost)
}

// writeSessionKey writes a new session key to dir/session-keys in the session_keys_file format (what
// `openssl rand -base64 32` prints) and returns its path and the key ring read back from it, as the server
// reads it.
func writeSessionKey(dir string) (string, *session.KeyRing, error) {
	k := make([]byte, session.KeySize)
	rand.Read(k)
	path := filepath.Join(dir, "session-keys")
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(k)+"\n"), 0o600); err != nil {
		return "", nil, err
	}
	ring, err := session.LoadKeys(path)
	return path, ring, err
}

// sessionMaxAge is the config's default session_max_age: what a sign-in gives a session.
const sessionMaxAge = 12 * time.Hour

// sessionRequests builds the CheckRequests of signed-in browser navigations, one session per token: a GET
// of a page on appHost with a browser's Accept and Sec-Fetch headers and a Cookie header holding the
// session's cookies (sealed with keys as a sign-in at now writes them: SealSession) after a cookie of the
// app's own. Each session holds the access token, a refresh token of the size and shape of Cognito's (the
// dev issuer's: it makes the cookie as large as a real one, and is never sent anywhere) and an e-mail, as a
// sign-in keeps them; the access token's exp is hours away, so no Check refreshes.
func sessionRequests(keys *session.KeyRing, toks []string, now time.Time) ([]*authv3.CheckRequest, error) {
	out := make([]*authv3.CheckRequest, len(toks))
	for i, t := range toks {
		claims := jwt.MapClaims{}
		if _, _, err := jwt.NewParser().ParseUnverified(t, claims); err != nil {
			return nil, fmt.Errorf("session %d: %w", i, err)
		}
		exp, err := claims.GetExpirationTime()
		if err != nil || exp == nil {
			return nil, fmt.Errorf("session %d: token without exp: %v", i, err)
		}
		s := &session.Session{AccessToken: t, RefreshToken: devissuer.RefreshToken(), Email: fmt.Sprintf("user%07d@example.com", i),
			Issued: now.Truncate(time.Second), Expires: now.Add(sessionMaxAge).Truncate(time.Second), AccessExpires: exp.Time}
		lines, err := session.SealSession(keys, session.CookieOptions{}, false, s, now)
		if err != nil {
			return nil, fmt.Errorf("session %d: %w", i, err)
		}
		cookie := []string{"theme=dark"}
		for _, l := range lines {
			c, err := http.ParseSetCookie(l)
			if err != nil {
				return nil, fmt.Errorf("session %d: %w", i, err)
			}
			cookie = append(cookie, c.Name+"="+c.Value)
		}
		h := map[string]string{
			":authority": appHost, ":method": "GET", ":path": "/app/orders?page=2", ":scheme": "https",
			"accept":          "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
			"accept-language": "en-GB,en;q=0.9", "accept-encoding": "gzip, deflate, br",
			"sec-fetch-mode": "navigate", "sec-fetch-dest": "document", "sec-fetch-site": "same-origin",
			"user-agent": "Mozilla/5.0 (X11; Linux x86_64) load/1.0", "cookie": strings.Join(cookie, "; "),
			"x-forwarded-proto": "https", "x-request-id": "6f1e6a0c-4b8e-4c1b-9e0f-bbbbbbbbbbbb",
		}
		out[i] = extauthz.Probe{Method: "GET", Host: appHost, Path: "/app/orders?page=2", Headers: h}.CheckRequest()
	}
	return out, nil
}
