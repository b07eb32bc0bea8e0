package token

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cognito-authz/cognito-authz/pkg/rs256"
)

// Sentinels of Verify. Each names one reason a token is refused; see authz for the reason codes.
var (
	ErrAlgorithm   = errors.New("algorithm not allowed")        // anything but RS256, including "none"
	ErrKIDMissing  = errors.New("kid missing")                  // Cognito always sets one
	ErrHeader      = errors.New("header parameter not allowed") // jku, x5u, jwk, x5c, crit
	ErrIssuer      = errors.New("issuer unknown")               // iss is no configured pool's
	ErrSignature   = errors.New("signature invalid")            //
	ErrExpired     = errors.New("token expired")                // exp (plus leeway) has passed
	ErrNotYetValid = errors.New("token not yet valid")          // nbf or iat (less leeway) is in the future
	ErrClaims      = errors.New("claims invalid")               // a required claim missing, of the wrong type, or insane
	ErrTokenUse    = errors.New("token_use not allowed")        // access where id is required, or the reverse
	ErrClient      = errors.New("app client not allowed")       // client_id (access) or aud (id) not configured

	ErrKeyUnknown      = errors.New("signing key unknown")      // the kid is not in the pool's key set, nor found by a refresh
	ErrKeysUnavailable = errors.New("signing keys unavailable") // the pool's key set has never loaded
)

// maxLifetime is Cognito's longest access or ID token lifetime (one day).
const maxLifetime = 24 * time.Hour

// KeySource gives the verification key for a token's kid; *jwks.Set is one. It is defined here, with the
// prepared key type of the leaf package rs256, so that token depends on no key-set implementation.
//
// Holds is part of the interface, not a lookup kept beside it, because the verifier already owns the mapping
// from a token to its pool's keys: an Identity carries its pool's KeySource and the key that verified it, so
// a cache of verified identities can ask whether that very key is still held without a second pool
// registry to keep in step.
type KeySource interface {
	// Key returns the key for kid, fetching within ctx's bounds if the source allows; any error means no
	// key can be had for kid now.
	Key(ctx context.Context, kid string) (*rs256.PublicKey, error)
	// Holds reports whether k is the key held under kid now, without fetching.
	Holds(kid string, k *rs256.PublicKey) bool
	// Ready reports whether the source has ever loaded: before that, a missing key is ErrKeysUnavailable.
	Ready() bool
}

// Pool is one Cognito user pool as the verifier sees it.
type Pool struct {
	Name      string
	Issuers   []string // exact iss values accepted
	ClientIDs []string
	TokenUse  string // access | id | any
	Keys      KeySource
}

// Identity is who a verified token says the caller is.
type Identity struct {
	Pool     string
	Subject  string
	Username string // username (access) or cognito:username (id); empty for machine-to-machine tokens
	ClientID string // client_id (access) or the matching aud (id)
	TokenUse string
	Email    string
	Scope    string   // space-separated, as in the token
	Groups   []string // cognito:groups
	Claims   map[string][]string
	JTI      string
	KID      string
	// Expires is when the token stops verifying: exp, at the second precision the validator compares at,
	// plus the leeway. The token verifies at t exactly when t is before Expires.
	Expires time.Time
	// NotBefore is when the token starts verifying: the later of nbf and iat, less the leeway. The token
	// verifies at t only when t is not before NotBefore.
	NotBefore time.Time

	keys KeySource        // the key set of the pool that verified it
	key  *rs256.PublicKey // the key that verified it
}

// KeyHeld reports whether the key that verified the token is still the one its pool's key set holds under
// the token's kid. A key removed from the JWKS, or replaced by another under the same kid, makes it false,
// so a cache of identities stops serving the key's tokens.
func (id *Identity) KeyHeld() bool { return id.keys != nil && id.keys.Holds(id.KID, id.key) }

// ValidAt reports whether the token's time claims accept t, as Verify would have judged them at t.
func (id *Identity) ValidAt(t time.Time) bool { return t.Before(id.Expires) && !t.Before(id.NotBefore) }

// Verifier checks tokens against a set of pools. It is safe for concurrent use.
type Verifier struct {
	byIssuer  map[string]*Pool
	validator *jwt.Validator
	leeway    time.Duration
	now       func() time.Time
	maxBytes  int
	extra     map[string]struct{} // nil: no extra claims are kept
}

// Option configures a Verifier.
type Option func(*Verifier)

// WithLeeway allows clock skew on exp, nbf and iat (default 30s).
func WithLeeway(d time.Duration) Option { return func(v *Verifier) { v.leeway = d } }

// WithClock replaces time.Now, for tests. Whatever caches verified identities reads the same clock
// through Verifier.Now.
func WithClock(now func() time.Time) Option { return func(v *Verifier) { v.now = now } }

// WithMaxBytes bounds the token length (default 8 KiB).
func WithMaxBytes(n int) Option { return func(v *Verifier) { v.maxBytes = n } }

// WithClaims names extra claims to keep in Identity.Claims (e.g. custom:tenant).
func WithClaims(names ...string) Option {
	return func(v *Verifier) {
		for _, n := range names {
			if v.extra == nil {
				v.extra = map[string]struct{}{}
			}
			v.extra[n] = struct{}{}
		}
	}
}

// NewVerifier checks Cognito tokens of the given pools: RS256 only, issuer routed to its pool before any key
// is read, exp, iat and sub required.
func NewVerifier(pools []Pool, opts ...Option) (*Verifier, error) {
	v := &Verifier{byIssuer: map[string]*Pool{}, leeway: 30 * time.Second, now: time.Now, maxBytes: 8 << 10}
	for _, o := range opts {
		o(v)
	}
	// Copy the pools: a caller that changes its slice later must not change what this verifier accepts.
	pools = slices.Clone(pools)
	for i := range pools {
		pools[i].Issuers, pools[i].ClientIDs = slices.Clone(pools[i].Issuers), slices.Clone(pools[i].ClientIDs)
		p := &pools[i]
		if p.Keys == nil {
			return nil, fmt.Errorf("token: pool %q has no keys", p.Name)
		}
		for _, iss := range p.Issuers {
			if _, dup := v.byIssuer[iss]; dup {
				return nil, fmt.Errorf("token: issuer %q is configured twice", iss)
			}
			v.byIssuer[iss] = p
		}
	}
	// golang-jwt judges exp, nbf and iat (required, leeway, the verifier's clock). Its Parser is not used:
	// it decodes the header into a map with encoding/json (case-folded names, the last duplicate wins),
	// decodes the claims a second time for anything custom, and verifies through the global signing-method
	// registry against a *rsa.PublicKey whose modulus crypto/rsa rebuilds per call. Verify decodes once,
	// by exact names, and verifies with the key prepared by rs256.
	v.validator = jwt.NewValidator(
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.leeway),
		jwt.WithTimeFunc(v.now),
	)
	return v, nil
}

// Now is the verifier's clock: a cache of its identities must judge expiry by the same time.
func (v *Verifier) Now() time.Time { return v.now() }

// b64 decodes the segments: base64url without padding, and strict, so the unused bits of the last
// character must be zero and each token has exactly one spelling.
var b64 = base64.RawURLEncoding.Strict()

// Verify returns the identity in raw, or an error wrapping one of this package's sentinels.
//
// The order of the checks is part of the contract: shape, header, claims and signature decoding
// (ErrMalformed, ErrHeader, ErrClaims), then alg, refused header parameters and kid, then the issuer, which
// picks the pool and so the key set before any key is read, then the key and the signature, then time, and
// last the Cognito claims (sub, token_use, client).
func (v *Verifier) Verify(ctx context.Context, raw string) (*Identity, error) {
	if len(raw) > v.maxBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(raw), v.maxBytes)
	}
	// The compact shape first: Go's base64 decoder skips \r and \n, and the signature segment is not
	// itself signed, so without this check "sig" and "si\ng" both verify and a token has many spellings.
	if err := wellFormed(raw); err != nil {
		return nil, err
	}
	i := strings.IndexByte(raw, '.')
	j := i + 1 + strings.IndexByte(raw[i+1:], '.')
	hb, err := b64.DecodeString(raw[:i])
	if err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrMalformed, err)
	}
	h, err := decodeHeader(hb)
	if err != nil {
		return nil, err
	}
	cb, err := b64.DecodeString(raw[i+1 : j])
	if err != nil {
		return nil, fmt.Errorf("%w: claims: %w", ErrMalformed, err)
	}
	c := &claims{want: v.extra}
	if err := c.decode(cb); err != nil {
		return nil, err
	}
	sig, err := b64.DecodeString(raw[j+1:])
	if err != nil {
		return nil, fmt.Errorf("%w: signature: %w", ErrMalformed, err)
	}
	switch {
	case h.alg != jwt.SigningMethodRS256.Alg():
		return nil, fmt.Errorf("%w: %.20q", ErrAlgorithm, h.alg)
	case h.forbidden != "":
		return nil, fmt.Errorf("%w: %q", ErrHeader, h.forbidden)
	case !h.kidValid || h.kid == "":
		return nil, ErrKIDMissing
	}
	// The issuer picks the pool, and so the key set, before any key is read: a token from an unknown
	// issuer costs no lookup and no fetch.
	pool := v.byIssuer[c.Iss]
	if pool == nil {
		return nil, fmt.Errorf("%w: %.200q", ErrIssuer, c.Iss)
	}
	key, err := pool.Keys.Key(ctx, h.kid)
	if err != nil {
		if !pool.Keys.Ready() {
			return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrKeyUnknown, err)
	}
	// The signing input is hashed in place: sha256 does not keep its input, so there is no copy to make.
	sum := sha256.Sum256(unsafe.Slice(unsafe.StringData(raw), j))
	if err := key.VerifyHash(sum[:], sig); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSignature, err)
	}
	if err := v.validator.Validate(c); err != nil {
		return nil, classify(err)
	}
	id, err := v.identity(pool, h.kid, c)
	if err != nil {
		return nil, err
	}
	id.key = key
	return id, nil
}

// classify maps golang-jwt's validation errors onto this package's sentinels, keeping the cause.
func classify(err error) error {
	wrap := func(s error) error { return fmt.Errorf("%w: %w", s, err) }
	switch {
	case errors.Is(err, ErrClaims):
		return err
	case errors.Is(err, jwt.ErrTokenExpired):
		return wrap(ErrExpired)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return wrap(ErrNotYetValid)
	default:
		return wrap(ErrClaims) // a required claim missing, or invalid: fail closed
	}
}

// identity applies the Cognito checks the signature and time checks do not cover.
func (v *Verifier) identity(p *Pool, kid string, c *claims) (*Identity, error) {
	switch {
	case c.Sub == "":
		return nil, fmt.Errorf("%w: sub is required", ErrClaims)
	case !c.Iat.set:
		return nil, fmt.Errorf("%w: iat is required", ErrClaims)
	case c.Exp.Before(c.Iat.Time):
		return nil, fmt.Errorf("%w: exp is before iat", ErrClaims)
	case c.Exp.Sub(c.Iat.Time) > maxLifetime:
		return nil, fmt.Errorf("%w: lifetime %s is longer than Cognito allows", ErrClaims, c.Exp.Sub(c.Iat.Time))
	}
	if c.TokenUse != "access" && c.TokenUse != "id" {
		return nil, fmt.Errorf("%w: token_use %.40q", ErrTokenUse, c.TokenUse)
	}
	if p.TokenUse != "any" && p.TokenUse != c.TokenUse {
		return nil, fmt.Errorf("%w: pool %s takes %s tokens, got %s", ErrTokenUse, p.Name, p.TokenUse, c.TokenUse)
	}
	// The validator compares NumericDates truncated to jwt.TimePrecision (a second): so must Expires and
	// NotBefore, or a token with exp 100.5 would be cached half a second past the moment it stops verifying.
	notBefore := c.Iat.Truncate(jwt.TimePrecision)
	if c.Nbf.set && c.Nbf.Truncate(jwt.TimePrecision).After(notBefore) {
		notBefore = c.Nbf.Truncate(jwt.TimePrecision)
	}
	id := &Identity{
		Pool: p.Name, Subject: c.Sub, TokenUse: c.TokenUse, Email: c.Email, Scope: c.Scope, Groups: c.Groups,
		Claims: c.extra, JTI: c.JTI, KID: kid, Expires: c.Exp.Truncate(jwt.TimePrecision).Add(v.leeway),
		NotBefore: notBefore.Add(-v.leeway), keys: p.Keys,
	}
	if c.TokenUse == "access" {
		// Access tokens name their app client in client_id and carry no aud.
		if !slices.Contains(p.ClientIDs, c.ClientID) {
			return nil, fmt.Errorf("%w: client_id %.80q", ErrClient, c.ClientID)
		}
		id.ClientID, id.Username = c.ClientID, c.Username
	} else {
		// ID tokens name their app client in aud, a string: Cognito never emits a list there, and AWS's
		// verifier (aws-jwt-verify) refuses one, so a list is not a token Cognito made.
		if c.AudArray {
			return nil, fmt.Errorf("%w: aud of an ID token is a list", ErrClaims)
		}
		i := slices.IndexFunc(c.Aud, func(a string) bool { return slices.Contains(p.ClientIDs, a) })
		if i < 0 {
			return nil, fmt.Errorf("%w: aud %.80q", ErrClient, []string(c.Aud))
		}
		id.ClientID, id.Username = c.Aud[i], c.CognitoUsername
	}
	return id, nil
}
