// Package authz decides: it turns a transport-free Request into a Decision by finding the token, verifying
// it and building the identity headers. It is the only place that combines token, headers and (later)
// policy and cache; the transports in extauthz only translate.
package authz

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// Request is what the decision needs of an HTTP request, whichever transport carried it.
type Request struct {
	Method            string
	Host              string
	Path              string // as received: may hold a query string
	Headers           token.Headers
	ContextExtensions map[string]string
	RequestID         string
}

// Header is one header to set.
type Header struct{ Name, Value string }

// Decision is the answer to one Request.
type Decision struct {
	Outcome     Outcome
	Reason      Reason
	Description string   // client-facing, fixed text
	Headers     []Header // allow: identity headers to set; deny: headers of the deny response
	Remove      []string // allow: identity headers to remove from the request (every one not set)
	// Headers and Remove may be shared with other Decisions (prebuilt denies, cached identities): they are
	// read-only. Replace the slice to change them, never write into it.
	Body     string // deny: JSON body
	Identity *token.Identity
	Rule     string
	Err      error // the cause of a deny, for logs; never sent to the client
}

// Allowed reports whether the request may proceed.
func (d *Decision) Allowed() bool { return d.Outcome == Allow }

// IdentityHeaders names the headers the upstream receives. Empty names are not sent.
type IdentityHeaders struct {
	Sub, Username, Groups, Scopes, ClientID, TokenUse, Email, Pool string
	Claims                                                         map[string]string // claim → header
}

// names lists every configured header name, fixed fields first, then claims in claim order.
func (h IdentityHeaders) names() []string {
	all := []string{h.Sub, h.Username, h.Groups, h.Scopes, h.ClientID, h.TokenUse, h.Email, h.Pool}
	for _, c := range sortedKeys(h.Claims) {
		all = append(all, h.Claims[c])
	}
	out := all[:0]
	for _, n := range all {
		if n != "" {
			out = append(out, n)
		}
	}
	return out
}

// Options configure an Authorizer.
type Options struct {
	Verifier *token.Verifier
	Sources  []token.Source // default: Authorization: Bearer
	MaxBytes int            // token length bound, default 8 KiB
	Headers  IdentityHeaders
	// ForwardToken false removes the Authorization header before the request reaches the upstream.
	ForwardToken bool
	// Cache bounds the verified-token cache; the zero value turns it off.
	Cache CacheOptions
}

// Authorizer makes Decisions. It is safe for concurrent use.
type Authorizer struct {
	opts   Options
	names  []string            // every identity header
	denies map[Reason]Decision // prebuilt: bodies and headers are fixed per reason
	cache  *tokenCache         // nil: off
}

// New makes an Authorizer.
func New(opts Options) (*Authorizer, error) {
	if opts.Verifier == nil {
		return nil, fmt.Errorf("authz: a verifier is required")
	}
	if len(opts.Sources) == 0 {
		opts.Sources = []token.Source{token.BearerSource}
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 8 << 10
	}
	a := &Authorizer{opts: opts, names: opts.Headers.names(), denies: map[Reason]Decision{}}
	for r, info := range reasonInfo {
		a.denies[r] = denial(info.outcome, r, info.text)
	}
	// The cache reads the verifier's clock: an entry stops serving at the instant the token stops verifying.
	c, err := newTokenCache(opts.Cache, opts.Verifier.Now)
	if err != nil {
		return nil, err
	}
	a.cache = c
	return a, nil
}

// denial builds the fixed part of a deny: status, WWW-Authenticate (RFC 6750 §3) and the JSON body.
func denial(o Outcome, r Reason, text string) Decision {
	body, _ := json.Marshal(map[string]string{"error": string(r), "error_description": text}) // strings: cannot fail
	hs := []Header{{"content-type", "application/json"}}
	switch o {
	case Unauthenticated:
		hs = append(hs, Header{"www-authenticate", fmt.Sprintf(`Bearer error="invalid_token", error_description=%q`, text)})
	case Forbidden:
		hs = append(hs, Header{"www-authenticate", fmt.Sprintf(`Bearer error="insufficient_scope", error_description=%q`, text)})
	case Unavailable:
		hs = append(hs, Header{"retry-after", "5"})
	}
	return Decision{Outcome: o, Reason: r, Description: text, Headers: hs, Body: string(body) + "\n"}
}

// Check decides one request. It never panics and never blocks longer than ctx allows; every path that is
// not a verified allow is a deny (fail closed).
func (a *Authorizer) Check(ctx context.Context, r *Request) Decision {
	if err := ctx.Err(); err != nil {
		// Envoy gave up on us: whatever we answer is not used, but never allow on a cancelled request.
		return a.deny(ReasonKeysUnavailable, err)
	}
	raw, err := token.Extract(r.Headers, a.opts.Sources, a.opts.MaxBytes)
	if err != nil {
		return a.deny(reasonOf(err), err)
	}
	if a.cache == nil {
		id, err := a.opts.Verifier.Verify(ctx, raw)
		if err != nil {
			return a.deny(reasonOf(err), err)
		}
		return a.allow(id)
	}
	k := key(raw)
	if e, ok := a.cache.lookup(k); ok {
		if e.id == nil {
			return a.deny(e.reason, e.err)
		}
		return Decision{Outcome: Allow, Reason: ReasonOK, Identity: e.id, Rule: "default", Headers: e.headers, Remove: e.remove}
	}
	id, err := a.opts.Verifier.Verify(ctx, raw)
	if err != nil {
		r := reasonOf(err)
		a.cache.storeDeny(k, r, err)
		return a.deny(r, err)
	}
	d := a.allow(id)
	a.cache.storeAllow(k, id, &d)
	return d
}

func (a *Authorizer) deny(r Reason, err error) Decision {
	d := a.denies[r]
	d.Rule = "default"
	d.Err = err
	return d
}

// allow sets every identity header the identity has a value for and removes all the others, so a client
// can never smuggle one of them upstream.
func (a *Authorizer) allow(id *token.Identity) Decision {
	h := a.opts.Headers
	d := Decision{Outcome: Allow, Reason: ReasonOK, Identity: id, Rule: "default",
		Headers: make([]Header, 0, len(a.names))}
	set := func(name, value string) {
		if name == "" {
			return
		}
		if value == "" || !headerSafe(value) {
			d.Remove = append(d.Remove, name)
			return
		}
		d.Headers = append(d.Headers, Header{name, value})
	}
	set(h.Sub, id.Subject)
	set(h.Username, id.Username)
	set(h.Groups, joinGroups(id.Groups))
	set(h.Scopes, id.Scope)
	set(h.ClientID, id.ClientID)
	set(h.TokenUse, id.TokenUse)
	set(h.Email, id.Email)
	set(h.Pool, id.Pool)
	for _, c := range sortedKeys(h.Claims) {
		set(h.Claims[c], strings.Join(id.Claims[c], ","))
	}
	if !a.opts.ForwardToken {
		d.Remove = append(d.Remove, "authorization")
	}
	return d
}

// joinGroups comma-joins the groups. A group whose name holds a comma (Cognito allows it) would read as two
// groups upstream, so it is left out of the header rather than let it forge membership.
func joinGroups(groups []string) string {
	var b strings.Builder
	for _, g := range groups {
		if g == "" || strings.ContainsRune(g, ',') || !headerSafe(g) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(g)
	}
	return b.String()
}

// headerSafe reports whether v can be sent as a header value as it is (RFC 9110 §5.5): no control
// characters but tab, no leading or trailing whitespace. Envoy rejects anything else.
func headerSafe(v string) bool {
	if v != strings.TrimSpace(v) {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
