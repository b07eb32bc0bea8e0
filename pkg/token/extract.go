// Package token finds a Cognito JWT in a request and verifies it: the Cognito-specific rules (issuer,
// token_use, client_id/aud, groups, scopes) on top of RS256 signature and time checks.
//
// Every error it returns wraps one of its sentinels, so callers branch with errors.Is.
package token

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

var (
	// ErrMissing means no credential was found in any configured source.
	ErrMissing = errors.New("token missing")
	// ErrMalformed means a credential was found but is not a well-formed JWT.
	ErrMalformed = errors.New("token malformed")
	// ErrTooLarge means the token is longer than the configured bound; it was not parsed.
	ErrTooLarge = errors.New("token too large")
)

// Headers reads request headers by lower-case name. http.Header satisfies it.
type Headers interface {
	Get(name string) string
}

// HeaderMap is Envoy's header map: lower-case names, duplicate headers comma-joined.
type HeaderMap map[string]string

// Get returns the value of the lower-case header name.
func (m HeaderMap) Get(name string) string { return m[name] }

// Source is one place a token may be: a header, optionally after a scheme prefix, or a cookie.
type Source struct {
	Header string // lower-case header name
	Prefix string // e.g. "Bearer ": matched case-insensitively, surrounding whitespace tolerated
	Cookie string // cookie name; set instead of Header
}

// AuthorizationHeader is the Authorization header's name as Envoy sends it: the one spelling of it.
const AuthorizationHeader = "authorization"

// BearerSource is the default: Authorization: Bearer <jwt>.
var BearerSource = Source{Header: AuthorizationHeader, Prefix: "Bearer "}

// Extract returns the token of the first source that holds a credential. A source whose header is present
// but holds a different scheme (Basic, say) does not count as holding one. maxBytes bounds the token's length
// before anything else looks at it.
func Extract(h Headers, sources []Source, maxBytes int) (string, error) {
	raw, err := Find(h, sources, maxBytes)
	if err != nil {
		return "", err
	}
	if err := wellFormed(raw); err != nil {
		return "", err
	}
	return raw, nil
}

// Find is Extract without the check of the compact JWS shape: the credential of the first source that
// holds one, bounded by maxBytes. It is for a caller that gives every credential it does not already know
// to Verify, which checks the shape first: authz's cache, whose hits are tokens that verified, byte for
// byte, so scanning them again on every request would find nothing.
func Find(h Headers, sources []Source, maxBytes int) (string, error) {
	for _, src := range sources {
		raw, found := src.lookup(h)
		if !found {
			continue
		}
		if len(raw) > maxBytes {
			return "", fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(raw), maxBytes)
		}
		return raw, nil
	}
	return "", ErrMissing
}

func (src Source) lookup(h Headers) (string, bool) {
	if src.Cookie != "" {
		line := h.Get("cookie")
		if line == "" {
			return "", false
		}
		// Parse leniently, as net/http does for a request: http.ParseCookie fails the whole line on one
		// malformed cookie, so another application's broken cookie on the same domain would hide ours.
		r := http.Request{Header: http.Header{"Cookie": {line}}}
		for _, c := range r.CookiesNamed(src.Cookie) {
			if c.Value != "" {
				return c.Value, true
			}
		}
		return "", false
	}
	v := strings.Trim(h.Get(src.Header), " \t")
	if v == "" {
		return "", false
	}
	if src.Prefix == "" {
		return v, true
	}
	scheme := strings.TrimRight(src.Prefix, " ")
	if len(v) < len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", false // another scheme: not our credential
	}
	rest := v[len(scheme):]
	if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
		return "", false // "Bearerx": another scheme
	}
	// "Bearer" with nothing after it is a malformed credential, not a missing one.
	return strings.Trim(rest, " \t"), true
}

// WithoutCookies returns the Cookie header line without the cookies named in names (the others kept as
// sent, in order, joined by "; " as RFC 6265 §5.4 joins them), and whether any was dropped. It splits as
// the lenient lookup reads, so every cookie a source could take a token from is dropped.
func WithoutCookies(line string, names []string) (string, bool) {
	var kept []string
	dropped := false
	for part := range strings.SplitSeq(line, ";") {
		part = strings.Trim(part, " \t")
		if part == "" {
			continue
		}
		name, _, _ := strings.Cut(part, "=")
		if slices.Contains(names, strings.Trim(name, " \t")) {
			dropped = true
			continue
		}
		kept = append(kept, part)
	}
	if !dropped {
		return line, false
	}
	return strings.Join(kept, "; "), true
}

// Classes of the bytes of a compact JWS, looked up by table: this loop runs over every token of every
// request, cached or not, and a table beats a chain of range comparisons several times over.
const (
	other byte = iota
	b64url
	dot
)

var jwsByte = func() (t [256]byte) {
	for c := range 256 {
		switch {
		case c == '.':
			t[c] = dot
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			t[c] = b64url
		}
	}
	return t
}()

// wellFormed checks the compact JWS shape: three base64url segments. It does no decoding; a comma (two
// Authorization headers merged by Envoy) or any other byte outside base64url is malformed.
func wellFormed(raw string) error {
	if raw == "" {
		return fmt.Errorf("%w: empty credential", ErrMalformed)
	}
	dots := 0
	for i := 0; i < len(raw); i++ {
		switch jwsByte[raw[i]] {
		case b64url:
		case dot:
			dots++
		default:
			return fmt.Errorf("%w: unexpected byte 0x%02x at %d", ErrMalformed, raw[i], i)
		}
	}
	if dots != 2 {
		return fmt.Errorf("%w: want 3 segments, have %d", ErrMalformed, dots+1)
	}
	return nil
}

// UnderscoredNames lists the header names that contain "_" (authz refuses look-alikes of identity
// headers); nil when there are none.
func (m HeaderMap) UnderscoredNames() []string {
	var out []string
	for name := range m {
		if strings.IndexByte(name, '_') >= 0 {
			out = append(out, name)
		}
	}
	return out
}
