// Package devissuer is an embedded stand-in for a Cognito user pool: an RSA key set served as a JWKS over
// HTTP and Cognito-shaped access and ID tokens signed with it. `make run` wires the service to one so a
// newcomer needs no AWS account, and the tests use it as their real JWKS endpoint.
//
// It is for development and tests only: the mint endpoint hands out tokens to anyone who can reach it, so
// serve it on loopback.
package devissuer

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Defaults of a new Issuer: a pool in us-east-1 with one app client.
const (
	DefaultRegion   = "us-east-1"
	DefaultPoolID   = "us-east-1_devpool"
	DefaultClientID = "devclient"
)

// Key is one RSA signing key and its kid.
type Key struct {
	ID      string
	Private *rsa.PrivateKey
}

// NewKey generates a 2048-bit RSA key, the size Cognito uses.
func NewKey(kid string) (*Key, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("devissuer: generate key: %w", err)
	}
	return &Key{ID: kid, Private: k}, nil
}

// Issuer mints tokens for one pool and serves its JWKS. The zero value is not usable: call New.
type Issuer struct {
	// URL is the issuer (the iss claim): the server's base URL plus "/" plus the pool id, as cognito-local does.
	URL      string
	PoolID   string
	ClientID string

	mu      sync.Mutex
	signing *Key
	served  []*Key // the JWKS
	status  int    // non-zero: the JWKS endpoint answers with this status and a broken body
	body    []byte // cached JWKS document

	garbage bool          // the JWKS endpoint answers 200 with a body that is not a JWKS
	delay   time.Duration // the JWKS endpoint waits this long before answering

	fetches atomic.Int64

	ui hostedUI // the Hosted UI endpoints' state (hostedui.go)
}

// New makes an issuer with a fresh signing key. Its URL is set by Serve (or by the caller, before minting).
func New() (*Issuer, error) {
	k, err := NewKey("dev-key-1")
	if err != nil {
		return nil, err
	}
	i := &Issuer{PoolID: DefaultPoolID, ClientID: DefaultClientID}
	i.SetKeys(k, k)
	return i, nil
}

// JWKSURL is where the key set is served.
func (i *Issuer) JWKSURL() string { return i.URL + "/.well-known/jwks.json" }

// Fetches counts the JWKS requests served so far.
func (i *Issuer) Fetches() int64 { return i.fetches.Load() }

// SigningKey returns the key Mint signs with.
func (i *Issuer) SigningKey() *Key {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.signing
}

// SetKeys makes signing the key Mint uses and served the keys the JWKS lists (rotation in tests).
func (i *Issuer) SetKeys(signing *Key, served ...*Key) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.signing, i.served = signing, served
	i.body = jwksJSON(served)
}

// FailWith makes the JWKS endpoint answer status (0 restores normal service).
func (i *Issuer) FailWith(status int) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.status = status
}

// Delay makes the JWKS endpoint wait d before answering, or until the client gives up (0 restores normal
// service): a JWKS slower than the fetch timeout.
func (i *Issuer) Delay(d time.Duration) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.delay = d
}

// ServeGarbage makes the JWKS endpoint answer 200 application/json with a body that is not a JWKS (false
// restores normal service).
func (i *Issuer) ServeGarbage(on bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.garbage = on
}

// garbageBody is truncated JSON: what a proxy's error page or a cut connection looks like to a decoder.
const garbageBody = `{"keys":[{"kty":"RSA","kid":"x","n":`

// ServeHTTP serves the JWKS at any path ending in /.well-known/jwks.json, on POST /mint mints a token from
// form values (see MintRequest), and serves the Hosted UI endpoints (see hostedui.go).
func (i *Issuer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasSuffix(r.URL.Path, "/.well-known/jwks.json") && r.Method == http.MethodGet:
		i.fetches.Add(1)
		i.mu.Lock()
		status, body, garbage, delay := i.status, i.body, i.garbage, i.delay
		i.mu.Unlock()
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if garbage {
			body = []byte(garbageBody)
		}
		if status != 0 {
			http.Error(w, "devissuer: failing on purpose", status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	case r.URL.Path == "/mint" && r.Method == http.MethodPost:
		i.serveMint(w, r)
	case i.serveHostedUI(w, r):
	default:
		http.NotFound(w, r)
	}
}

// MintRequest is what POST /mint accepts as form values: sub, username, groups (comma-separated), scopes
// (space-separated), token_use (access or id), email, ttl (Go duration).
type MintRequest struct {
	Sub, Username, Groups, Scopes, TokenUse, Email string
	TTL                                            time.Duration
}

func (i *Issuer) serveMint(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ttl := time.Hour
	if s := r.PostForm.Get("ttl"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			http.Error(w, "ttl: "+err.Error(), http.StatusBadRequest)
			return
		}
		ttl = d
	}
	mr := MintRequest{
		Sub: r.PostForm.Get("sub"), Username: r.PostForm.Get("username"), Groups: r.PostForm.Get("groups"),
		Scopes: r.PostForm.Get("scopes"), TokenUse: r.PostForm.Get("token_use"), Email: r.PostForm.Get("email"), TTL: ttl,
	}
	tok, err := i.MintFor(mr)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintln(w, tok)
}

// MintFor signs a token described by a MintRequest; empty fields take the defaults of Access and IDToken.
func (i *Issuer) MintFor(mr MintRequest) (string, error) {
	var c jwt.MapClaims
	switch mr.TokenUse {
	case "", "access":
		c = i.Access()
		if mr.Username != "" {
			c["username"] = mr.Username
		}
		if mr.Scopes != "" {
			c["scope"] = mr.Scopes
		}
	case "id":
		c = i.IDToken()
		if mr.Username != "" {
			c["cognito:username"] = mr.Username
		}
		if mr.Email != "" {
			c["email"] = mr.Email
		}
	default:
		return "", fmt.Errorf("token_use %q: want access or id", mr.TokenUse)
	}
	if mr.Sub != "" {
		c["sub"] = mr.Sub
	}
	if mr.Groups != "" {
		c["cognito:groups"] = strings.Split(mr.Groups, ",")
	}
	if mr.TTL != 0 {
		c["exp"] = time.Now().Add(mr.TTL).Unix()
	}
	return i.Mint(c)
}

// Access returns the claims of a Cognito access token for user "alice" in group "users", valid for an hour.
func (i *Issuer) Access() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"sub":            "0b5f3c1e-7a2d-4c1b-9e0f-aaaaaaaaaaaa",
		"iss":            i.URL,
		"client_id":      i.ClientID,
		"origin_jti":     "6f1e6a0c-origin",
		"event_id":       "e0a9-event",
		"token_use":      "access",
		"scope":          "aws.cognito.signin.user.admin openid email",
		"auth_time":      now.Unix(),
		"exp":            now.Add(time.Hour).Unix(),
		"iat":            now.Unix(),
		"jti":            "3d9e5b4f-jti",
		"username":       "alice",
		"cognito:groups": []string{"users"},
		"version":        2,
	}
}

// M2M returns the claims of a client-credentials access token: no username, no groups, sub is the client.
func (i *Issuer) M2M() jwt.MapClaims {
	c := i.Access()
	delete(c, "username")
	delete(c, "cognito:groups")
	delete(c, "origin_jti")
	delete(c, "event_id")
	c["sub"] = i.ClientID
	c["scope"] = "orders/read orders/write"
	return c
}

// IDToken returns the claims of a Cognito ID token for "alice", valid for an hour.
func (i *Issuer) IDToken() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"sub":              "0b5f3c1e-7a2d-4c1b-9e0f-aaaaaaaaaaaa",
		"iss":              i.URL,
		"aud":              i.ClientID,
		"token_use":        "id",
		"cognito:username": "alice",
		"cognito:groups":   []string{"users"},
		"email":            "alice@example.com",
		"email_verified":   true,
		"custom:tenant":    "acme",
		"auth_time":        now.Unix(),
		"exp":              now.Add(time.Hour).Unix(),
		"iat":              now.Unix(),
		"jti":              "9a8b-jti",
		"origin_jti":       "6f1e6a0c-origin",
	}
}

// Mint signs claims with the current signing key, RS256, with its kid in the header.
func (i *Issuer) Mint(claims jwt.MapClaims) (string, error) {
	return Sign(i.SigningKey(), nil, claims)
}

// Sign signs claims with key using RS256. header entries are added to (or, with a nil value, removed from)
// the JWT header; tests use it to forge tokens.
func Sign(key *Key, header map[string]any, claims jwt.Claims) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header["kid"] = key.ID
	for k, v := range header {
		if v == nil {
			delete(t.Header, k)
			continue
		}
		t.Header[k] = v
	}
	s, err := t.SignedString(key.Private)
	if err != nil {
		return "", fmt.Errorf("devissuer: sign: %w", err)
	}
	return s, nil
}

func jwksJSON(keys []*Key) []byte {
	type jwk struct {
		Kty string `json:"kty"`
		Alg string `json:"alg"`
		Use string `json:"use"`
		Kid string `json:"kid"`
		N   string `json:"n"`
		E   string `json:"e"`
	}
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	for _, k := range keys {
		pub := k.Private.PublicKey
		set.Keys = append(set.Keys, jwk{
			Kty: "RSA", Alg: "RS256", Use: "sig", Kid: k.ID,
			N: base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
			E: base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
		})
	}
	b, _ := json.Marshal(set) // cannot fail: plain strings
	return b
}
