package token

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cognito-authz/cognito-authz/pkg/jwks"
	"github.com/golang-jwt/jwt/v5"
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

	// ErrKeyUnknown and ErrKeysUnavailable come from the pool's key set.
	ErrKeyUnknown      = jwks.ErrKeyUnknown
	ErrKeysUnavailable = jwks.ErrUnavailable
)

// forbiddenHeaders would point verification at keys or rules the token chooses itself. None is honoured;
// a token carrying one is refused outright. https://www.rfc-editor.org/rfc/rfc8725#section-3.10
var forbiddenHeaders = []string{"jku", "x5u", "jwk", "x5c", "crit"}

// maxLifetime is Cognito's longest access or ID token lifetime (one day).
const maxLifetime = 24 * time.Hour

// KeySource gives the key for a token; *jwks.Set is one.
//
// Has is part of the interface, not a lookup kept beside it, because the verifier already owns the mapping
// from a token to its pool's keys: an Identity carries its pool's KeySource, so a cache of verified
// identities can ask whether the signing key is still held without a second pool registry to keep in step.
type KeySource interface {
	Keyfunc(ctx context.Context) jwt.Keyfunc
	// Has reports whether kid is in the set as last loaded, without fetching.
	Has(kid string) bool
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

	keys KeySource // the key set of the pool that verified it
}

// KeyHeld reports whether the key that signed the token is still in its pool's key set. A key removed from
// the JWKS on refresh makes it false, so a cache of identities stops serving the key's tokens.
func (id *Identity) KeyHeld() bool { return id.keys != nil && id.keys.Has(id.KID) }

// ValidAt reports whether the token's time claims accept t, as Verify would have judged them at t.
func (id *Identity) ValidAt(t time.Time) bool { return t.Before(id.Expires) && !t.Before(id.NotBefore) }

// Verifier checks tokens against a set of pools. It is safe for concurrent use.
type Verifier struct {
	byIssuer map[string]*Pool
	parser   *jwt.Parser
	leeway   time.Duration
	now      func() time.Time
	maxBytes int
	extra    []string
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
	return func(v *Verifier) { v.extra = append(v.extra, names...) }
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
	slices.Sort(v.extra)
	v.extra = slices.Compact(v.extra)
	v.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.leeway),
		jwt.WithTimeFunc(v.now),
		jwt.WithStrictDecoding(),
	)
	return v, nil
}

// Now is the verifier's clock: a cache of its identities must judge expiry by the same time.
func (v *Verifier) Now() time.Time { return v.now() }

// Verify returns the identity in raw, or an error wrapping one of this package's sentinels.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Identity, error) {
	if len(raw) > v.maxBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(raw), v.maxBytes)
	}
	// The compact shape first: Go's base64 decoder skips \r and \n, and the signature segment is not
	// itself signed, so without this check "sig" and "si\ng" both verify and a token has many spellings.
	if err := wellFormed(raw); err != nil {
		return nil, err
	}
	c := &claims{want: v.extra}
	var pool *Pool
	var kid string
	tok, err := v.parser.ParseWithClaims(raw, c, func(t *jwt.Token) (any, error) {
		for _, h := range forbiddenHeaders {
			if _, ok := t.Header[h]; ok {
				return nil, fmt.Errorf("%w: %q", ErrHeader, h)
			}
		}
		k, ok := t.Header["kid"].(string)
		if !ok || k == "" {
			return nil, ErrKIDMissing
		}
		kid = k
		// The issuer picks the pool, and so the key set, before any key is read: a token from an
		// unknown issuer costs no lookup and no fetch.
		if pool = v.byIssuer[c.Iss]; pool == nil {
			return nil, fmt.Errorf("%w: %.200q", ErrIssuer, c.Iss)
		}
		return pool.Keys.Keyfunc(ctx)(t)
	})
	if err != nil {
		return nil, classify(tok, err)
	}
	return v.identity(pool, kid, c)
}

// classify maps golang-jwt's errors onto this package's sentinels, keeping the cause.
func classify(tok *jwt.Token, err error) error {
	for _, s := range []error{ErrHeader, ErrKIDMissing, ErrIssuer, ErrKeysUnavailable, ErrKeyUnknown, ErrClaims} {
		if errors.Is(err, s) {
			return err
		}
	}
	wrap := func(s error) error { return fmt.Errorf("%w: %w", s, err) }
	switch {
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		if tok == nil || tok.Method == nil || tok.Method.Alg() != jwt.SigningMethodRS256.Alg() {
			return wrap(ErrAlgorithm)
		}
		if errors.Is(err, jwt.ErrTokenUnverifiable) {
			return wrap(ErrKeyUnknown) // keyfunc refused the key (its alg or use does not match)
		}
		return wrap(ErrSignature)
	case errors.Is(err, jwt.ErrTokenExpired):
		return wrap(ErrExpired)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return wrap(ErrNotYetValid)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing), errors.Is(err, jwt.ErrTokenInvalidClaims):
		return wrap(ErrClaims)
	case errors.Is(err, jwt.ErrTokenMalformed):
		// An unknown or missing alg is ErrTokenUnverifiable (above). Here tok.Method is nil whenever the
		// header or claims failed to decode, which says nothing about the algorithm.
		return wrap(ErrMalformed)
	default:
		return wrap(ErrMalformed) // fail closed: whatever it is, it did not verify
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
		// ID tokens name their app client in aud.
		i := slices.IndexFunc(c.Aud, func(a string) bool { return slices.Contains(p.ClientIDs, a) })
		if i < 0 {
			return nil, fmt.Errorf("%w: aud %.80q", ErrClient, []string(c.Aud))
		}
		id.ClientID, id.Username = c.Aud[i], c.CognitoUsername
	}
	return id, nil
}
