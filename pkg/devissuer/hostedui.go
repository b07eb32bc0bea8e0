package devissuer

// The Hosted UI half of the dev issuer: /oauth2/authorize with a plain login form, /oauth2/token (code +
// PKCE S256 and refresh_token grants), /oauth2/revoke, /logout and the discovery document, shaped like
// Cognito's managed login so the browser flow runs with no AWS account. Like the rest of the package it is
// for development and tests: any user name with any non-empty password signs in.
//
// This file imports neither testing nor net/http/httptest, so the production binary can serve it in
// `make run`.

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Hosted UI limits, as Cognito documents them.
const (
	codeTTL     = 5 * time.Minute
	maxFormSize = 64 << 10
	maxGrants   = 10000 // codes and refresh tokens held; the oldest are dropped beyond it
)

// grant is what a code or a refresh token stands for.
type grant struct {
	redirectURI string
	challenge   string // PKCE S256 code_challenge; empty when the client sent none
	nonce       string
	scope       string
	username    string
	groups      []string
	expires     time.Time // codes only
}

// hostedUI is the state of the Hosted UI endpoints; the Issuer's mutex guards it.
type hostedUI struct {
	codes    map[string]*grant // single-use authorization codes
	refresh  map[string]*grant // refresh tokens by SHA-256
	tokenTTL time.Duration     // access and ID token lifetime; 0 is an hour
	secret   string            // client secret; empty: a public client
	rotate   bool              // issue a new refresh token on every refresh
	tokenErr int               // non-zero: /oauth2/token answers with this status

	tokenCalls, revokes int
}

// DomainURL is the base of the Hosted UI endpoints (Cognito's "domain"): the server's URL without the pool.
func (i *Issuer) DomainURL() string { return strings.TrimSuffix(i.URL, "/"+i.PoolID) }

// SetTokenTTL sets the lifetime of the access and ID tokens /oauth2/token issues (0: an hour). A short
// lifetime exercises refresh.
func (i *Issuer) SetTokenTTL(d time.Duration) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.ui.tokenTTL = d
}

// SetClientSecret makes the app client confidential: /oauth2/token and /oauth2/revoke then require HTTP
// Basic authentication with ClientID and secret ("" restores a public client).
func (i *Issuer) SetClientSecret(secret string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.ui.secret = secret
}

// RotateRefreshTokens makes the refresh grant return a new refresh token, as Cognito does with rotation
// enabled (default: the refresh grant returns none, as Cognito does without it).
func (i *Issuer) RotateRefreshTokens(on bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.ui.rotate = on
}

// FailTokenWith makes /oauth2/token answer status with a server_error body (0 restores normal service):
// the token endpoint being down.
func (i *Issuer) FailTokenWith(status int) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.ui.tokenErr = status
}

// TokenCalls counts the requests /oauth2/token has answered; Revokes counts the tokens revoked.
func (i *Issuer) TokenCalls() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.ui.tokenCalls
}

// Revokes counts the successful /oauth2/revoke calls.
func (i *Issuer) Revokes() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.ui.revokes
}

// serveHostedUI answers the Hosted UI paths; it reports false for any other path.
func (i *Issuer) serveHostedUI(w http.ResponseWriter, r *http.Request) bool {
	switch r.URL.Path {
	case "/oauth2/authorize":
		i.serveAuthorize(w, r)
	case "/oauth2/token":
		i.serveToken(w, r)
	case "/oauth2/revoke":
		i.serveRevoke(w, r)
	case "/logout":
		i.serveLogout(w, r)
	case "/" + i.PoolID + "/.well-known/openid-configuration":
		i.serveDiscovery(w, r)
	default:
		return false
	}
	return true
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in (dev issuer)</title></head>
<body><h1>Sign in</h1><p>Dev issuer: any user name and any non-empty password sign in.</p>
{{if .Error}}<p role="alert">{{.Error}}</p>{{end}}
<form method="post" action="/oauth2/authorize">
{{range $k, $v := .Params}}<input type="hidden" name="{{$k}}" value="{{$v}}">
{{end}}<label>User name <input name="username" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<label>Groups (comma-separated) <input name="groups"></label>
<button type="submit">Sign in</button>
</form></body></html>
`))

// authorizeParams are the query parameters of /oauth2/authorize the form carries to its POST.
var authorizeParams = []string{"response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
	"code_challenge", "code_challenge_method"}

// serveAuthorize shows the login form on GET and, on POST of the form, redirects to redirect_uri with a
// single-use code (or an error, as Cognito does, once the redirect_uri is known to be usable).
func (i *Issuer) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormSize)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	p := map[string]string{}
	for _, k := range authorizeParams {
		p[k] = r.Form.Get(k)
	}
	// Without a valid client and redirect_uri there is nowhere safe to send an error: answer here.
	if p["client_id"] != i.ClientID {
		http.Error(w, "unknown client_id", http.StatusBadRequest)
		return
	}
	ru, err := url.Parse(p["redirect_uri"])
	if err != nil || (ru.Scheme != "https" && ru.Scheme != "http") || ru.Host == "" || ru.Fragment != "" {
		http.Error(w, "redirect_uri must be an absolute http(s) URL", http.StatusBadRequest)
		return
	}
	fail := func(code, desc string) {
		q := ru.Query()
		q.Set("error", code)
		q.Set("error_description", desc)
		if p["state"] != "" {
			q.Set("state", p["state"])
		}
		ru.RawQuery = q.Encode()
		http.Redirect(w, r, ru.String(), http.StatusFound)
	}
	switch {
	case p["response_type"] != "code":
		fail("unsupported_response_type", "only the code grant is enabled")
		return
	case p["code_challenge"] != "" && p["code_challenge_method"] != "S256":
		fail("invalid_request", "code_challenge_method must be S256")
		return
	}
	if r.Method == http.MethodGet {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		loginPage.Execute(w, struct {
			Params map[string]string
			Error  string
		}{Params: p})
		return
	}
	user, pass := strings.TrimSpace(r.PostForm.Get("username")), r.PostForm.Get("password")
	if user == "" || pass == "" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		loginPage.Execute(w, struct {
			Params map[string]string
			Error  string
		}{Params: p, Error: "Enter a user name and a password."})
		return
	}
	var groups []string
	for g := range strings.SplitSeq(r.PostForm.Get("groups"), ",") {
		if g = strings.TrimSpace(g); g != "" {
			groups = append(groups, g)
		}
	}
	code := randomString(32)
	i.mu.Lock()
	i.ui.put(&i.ui.codes, code, &grant{
		redirectURI: p["redirect_uri"], challenge: p["code_challenge"], nonce: p["nonce"], scope: p["scope"],
		username: user, groups: groups, expires: time.Now().Add(codeTTL),
	})
	i.mu.Unlock()
	q := ru.Query()
	q.Set("code", code)
	if p["state"] != "" {
		q.Set("state", p["state"])
	}
	ru.RawQuery = q.Encode()
	http.Redirect(w, r, ru.String(), http.StatusFound)
}

// put stores g under k in *m, dropping an arbitrary entry beyond maxGrants so a flood cannot grow it.
func (h *hostedUI) put(m *map[string]*grant, k string, g *grant) {
	if *m == nil {
		*m = map[string]*grant{}
	}
	if len(*m) >= maxGrants {
		for old := range *m {
			delete(*m, old)
			break
		}
	}
	(*m)[k] = g
}

// oauthError writes an OAuth 2.0 error response (RFC 6749 §5.2).
func oauthError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code})
}

// clientOK checks the client authentication of a token or revoke request: HTTP Basic with the secret when
// the client has one, else a client_id form value (or Basic with an empty secret).
func (i *Issuer) clientOK(r *http.Request, secret string) bool {
	id, sec, basic := r.BasicAuth()
	if basic {
		id, _ = url.QueryUnescape(id)
		sec, _ = url.QueryUnescape(sec)
	} else {
		id = r.PostForm.Get("client_id")
	}
	if id != i.ClientID {
		return false
	}
	if secret == "" {
		return true
	}
	return basic && subtle.ConstantTimeCompare([]byte(sec), []byte(secret)) == 1
}

// tokenResponse is /oauth2/token's success body.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	IDToken      string `json:"id_token,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

func (i *Issuer) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormSize)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	i.mu.Lock()
	i.ui.tokenCalls++
	status, secret, ttl, rotate := i.ui.tokenErr, i.ui.secret, i.ui.tokenTTL, i.ui.rotate
	i.mu.Unlock()
	if status != 0 {
		oauthError(w, status, "server_error")
		return
	}
	if !i.clientOK(r, secret) {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	if ttl <= 0 {
		ttl = time.Hour
	}
	var g *grant
	var refresh string
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		code := r.PostForm.Get("code")
		i.mu.Lock()
		g = i.ui.codes[code]
		delete(i.ui.codes, code) // single use, whatever happens next
		i.mu.Unlock()
		switch {
		case g == nil, time.Now().After(g.expires), r.PostForm.Get("redirect_uri") != g.redirectURI:
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		case g.challenge != "" && !pkceOK(r.PostForm.Get("code_verifier"), g.challenge):
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		refresh = RefreshToken()
		i.mu.Lock()
		i.ui.put(&i.ui.refresh, hashString(refresh), g)
		i.mu.Unlock()
	case "refresh_token":
		k := hashString(r.PostForm.Get("refresh_token"))
		i.mu.Lock()
		g = i.ui.refresh[k]
		if g != nil && rotate {
			delete(i.ui.refresh, k)
			refresh = RefreshToken()
			i.ui.put(&i.ui.refresh, hashString(refresh), g)
		}
		i.mu.Unlock()
		if g == nil {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	access, id, err := i.mintSession(g, ttl)
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(tokenResponse{AccessToken: access, IDToken: id, RefreshToken: refresh,
		TokenType: "Bearer", ExpiresIn: int(ttl / time.Second)})
}

// mintSession signs the access and ID tokens of a grant, Cognito-shaped, valid for ttl.
func (i *Issuer) mintSession(g *grant, ttl time.Duration) (access, id string, err error) {
	now := time.Now()
	exp := now.Add(ttl).Unix()
	sub := subjectOf(g.username)
	a := i.Access()
	a["sub"], a["username"], a["exp"], a["jti"] = sub, g.username, exp, randomString(16)
	if g.scope != "" {
		a["scope"] = g.scope
	}
	t := i.IDToken()
	t["sub"], t["cognito:username"], t["exp"], t["jti"] = sub, g.username, exp, randomString(16)
	t["email"] = g.username + "@example.com"
	if g.nonce != "" {
		t["nonce"] = g.nonce
	}
	if len(g.groups) > 0 {
		a["cognito:groups"], t["cognito:groups"] = g.groups, g.groups
	} else {
		delete(a, "cognito:groups")
		delete(t, "cognito:groups")
	}
	if access, err = i.Mint(a); err != nil {
		return "", "", err
	}
	if id, err = i.Mint(t); err != nil {
		return "", "", err
	}
	return access, id, nil
}

func (i *Issuer) serveRevoke(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormSize)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	i.mu.Lock()
	secret := i.ui.secret
	i.mu.Unlock()
	if !i.clientOK(r, secret) {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	k := hashString(r.PostForm.Get("token"))
	i.mu.Lock()
	if _, ok := i.ui.refresh[k]; ok {
		delete(i.ui.refresh, k)
		i.ui.revokes++
	}
	i.mu.Unlock()
	w.WriteHeader(http.StatusOK) // RFC 7009 §2.2: an unknown token is not an error
}

// serveLogout redirects to logout_uri, as Cognito's /logout does for an allowed sign-out URL.
func (i *Issuer) serveLogout(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	u, err := url.Parse(q.Get("logout_uri"))
	if q.Get("client_id") != i.ClientID || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		http.Error(w, "logout needs this client_id and an absolute logout_uri", http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func (i *Issuer) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	d := i.DomainURL()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"issuer":                                i.URL,
		"authorization_endpoint":                d + "/oauth2/authorize",
		"token_endpoint":                        d + "/oauth2/token",
		"revocation_endpoint":                   d + "/oauth2/revoke",
		"end_session_endpoint":                  d + "/logout",
		"userinfo_endpoint":                     d + "/oauth2/userInfo",
		"jwks_uri":                              i.JWKSURL(),
		"response_types_supported":              []string{"code", "token"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token"},
		"code_challenge_methods_supported":      []string{"S256"},
		"scopes_supported":                      []string{"openid", "email", "phone", "profile"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
	})
}

// pkceOK checks an RFC 7636 S256 code_verifier against its challenge.
func pkceOK(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
}

// subjectOf gives each user name a stable, UUID-shaped sub.
func subjectOf(username string) string {
	s := sha256.Sum256([]byte("devissuer sub " + username))
	h := base64.RawURLEncoding.EncodeToString(s[:])
	h = strings.NewReplacer("-", "a", "_", "b").Replace(strings.ToLower(h))
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// RefreshToken returns an opaque refresh token the size and shape of Cognito's (a five-part JWE, ~1.8 KB),
// so cookie sizes measured against the dev issuer are those of production.
func RefreshToken() string {
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"cty":"JWT","enc":"A256GCM","alg":"RSA-OAEP"}`))
	return hdr + "." + randomString(256) + "." + randomString(12) + "." + randomString(1150) + "." + randomString(16)
}

// randomString is n random bytes, base64url.
func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashString(s string) string {
	h := sha256.Sum256([]byte(s))
	return string(h[:])
}
