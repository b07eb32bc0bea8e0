package runtime

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/cognito-authz/cognito-authz/pkg/config"
	"github.com/cognito-authz/cognito-authz/pkg/session"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// buildSession maps the browser: block onto a session.Flow (nil when there is none). Its checks are
// session.New's, and the keys file and client secret are read here, so config check refuses what serve
// would. Every reload builds a new flow: the keys file is read again, and the flow's caches (opened
// sessions, recent refreshes) start empty, which costs one decrypt per session.
//
// The access tokens of sessions are verified by the generation's verifier (the same one, and the same
// verified-token cache, as Bearer tokens); ID tokens by a verifier of the browser pool alone, for ID tokens
// of the browser client, keeping the nonce and the claims the identity headers read.
func buildSession(cfg *config.Config, pools []token.Pool, access *token.Verifier, claims []string, log *slog.Logger) (*session.Flow, error) {
	b := cfg.Browser
	if b == nil {
		return nil, nil
	}
	wrap := func(err error) error { return fmt.Errorf("%w: browser: %w", config.ErrInvalid, err) }
	keys, err := session.LoadKeys(b.SessionKeysFile)
	if err != nil {
		return nil, wrap(fmt.Errorf("session_keys_file: %w", err))
	}
	var secret string
	if b.ClientSecretFile != "" {
		raw, err := os.ReadFile(b.ClientSecretFile)
		if err != nil {
			return nil, wrap(fmt.Errorf("client_secret_file: %w", err))
		}
		if secret = strings.TrimSpace(string(raw)); secret == "" || len(secret) > 1024 {
			return nil, wrap(fmt.Errorf("client_secret_file %s: want one non-empty line", b.ClientSecretFile))
		}
	}
	i := slices.IndexFunc(pools, func(p token.Pool) bool { return p.Name == b.Pool })
	if i < 0 {
		return nil, wrap(fmt.Errorf("pool %q is not configured", b.Pool)) // config.Validate says so first
	}
	idPool := pools[i]
	idPool.TokenUse, idPool.ClientIDs = "id", []string{b.ClientID}
	idClaims := append(slices.Clone(claims), "nonce")
	idv, err := token.NewVerifier([]token.Pool{idPool},
		token.WithLeeway(cfg.Token.Leeway.Std()),
		token.WithMaxBytes(cfg.Token.MaxBytes),
		token.WithClaims(idClaims...))
	if err != nil {
		return nil, wrap(err)
	}
	sameSite := map[string]http.SameSite{"lax": http.SameSiteLaxMode, "strict": http.SameSiteStrictMode,
		"none": http.SameSiteNoneMode}[b.Cookie.SameSite]
	f, err := session.New(session.Options{
		Domain: b.Domain, ClientID: b.ClientID, ClientSecret: secret, Scopes: b.Scopes, Pool: b.Pool,
		AllowedHosts: b.AllowedHosts, CallbackPath: b.CallbackPath, LoginPath: b.LoginPath, LogoutPath: b.LogoutPath,
		LogoutRedirect: b.LogoutRedirect, LogoutGET: b.LogoutGET, Keys: keys,
		MaxAge: b.SessionMaxAge.Std(), RefreshBefore: b.RefreshBefore.Std(),
		Cookie:         session.CookieOptions{Name: b.Cookie.Name, Domain: b.Cookie.Domain, SameSite: sameSite},
		Endpoints:      session.Endpoints{Authorize: b.Endpoints.Authorize, Token: b.Endpoints.Token, Logout: b.Endpoints.Logout, Revoke: b.Endpoints.Revoke},
		InsecureHTTP:   b.InsecureHTTP,
		AccessVerifier: access, IDVerifier: idv,
		Logger: log.With("component", "session"),
	})
	if err != nil {
		return nil, wrap(err)
	}
	return f, nil
}
