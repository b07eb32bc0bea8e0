// Package authz decides: it turns a transport-free Request into a Decision by asking the policy which rule
// applies, finding and verifying the token the rule needs, checking the rule's requirements and building the
// identity headers. It is the only place that combines policy, token and headers; the transports in
// extauthz only translate.
package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/cognito-authz/cognito-authz/pkg/policy"
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
	// Unset lists, on allow, the identity headers without a value (all of them on an anonymous allow): the
	// identity headers in Remove, without the token headers Remove may also name. The HTTP protocol answers
	// each of them with an empty value, so a forward-auth proxy that copies named headers from the answer
	// (Caddy copy_headers, Traefik authResponseHeaders, nginx auth_request_set) always finds every one and
	// overwrites the client's copy, never passing it on or writing a placeholder.
	Unset []string
	// Headers, Remove and Unset may be shared with other Decisions (prebuilt denies, cached identities): they
	// are read-only. Replace the slice to change them, never write into it.
	Body     string          // deny: JSON body
	Identity *token.Identity // nil on an anonymous allow and on every deny before verification
	Rule     string          // the name of the matched rule, or "default"
	Err      error           // the cause of a deny, for logs; never sent to the client
	// DryRun marks a deny answered as an allow (see Authorizer.DryRun): WouldBe is the outcome it would
	// have had, Reason and Err stay the deny's.
	DryRun  bool
	WouldBe Outcome
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
	for _, c := range slices.Sorted(maps.Keys(h.Claims)) {
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
	// Policy picks the rule of each request; nil is no rules and default authenticated. The Verifier must
	// keep every claim Policy.Claims names (token.WithClaims), or claim requirements can never be met.
	Policy   *policy.Policy
	Sources  []token.Source // default: Authorization: Bearer
	MaxBytes int            // token length bound, default 8 KiB
	Headers  IdentityHeaders
	// ForwardToken false removes the Authorization header before the request reaches the upstream.
	ForwardToken bool
	// DryRun answers every deny as an allow, marked (see Observed); per-rule dry runs use Authorizer.DryRun.
	DryRun bool
	// Cache bounds the verified-token cache; the zero value turns it off.
	Cache CacheOptions
}

// Authorizer makes Decisions. It is safe for concurrent use.
type Authorizer struct {
	opts      Options
	names     []string                 // every identity header
	denies    map[Reason]Decision      // prebuilt: bodies and headers are fixed per reason
	forbidden [len(forbidden)]Decision // prebuilt, by policy.Unmet
	anonymous []string                 // what an anonymous allow removes: every identity header (and authorization)
	unset     []string                 // what an anonymous allow leaves unset: every identity header
	cache     *tokenCache              // nil: off
}

// errRuleDenied is the logged cause of a deny rule.
var errRuleDenied = errors.New("the matching rule denies every request")

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
	if opts.Policy == nil {
		p, err := policy.New(nil, policy.Authenticated)
		if err != nil {
			return nil, err
		}
		opts.Policy = p
	}
	a := &Authorizer{opts: opts, names: opts.Headers.names(), denies: map[Reason]Decision{}}
	for r, info := range reasonInfo {
		a.denies[r] = denial(info.outcome, r, info.text)
	}
	for u, f := range forbidden {
		if f.reason == "" {
			continue // policy.Met
		}
		text := f.text
		if text == "" {
			text = reasonInfo[f.reason].text
		}
		a.forbidden[u] = denial(Forbidden, f.reason, text)
	}
	a.anonymous = slices.Clone(a.names)
	a.unset = slices.Clip(a.anonymous[:len(a.names)]) // shares anonymous's array; both read-only
	if !opts.ForwardToken {
		a.anonymous = append(a.anonymous, "authorization")
	}
	a.anonymous = slices.Clip(a.anonymous) // a caller appending to Remove must not write into the shared array
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
// not an allow the matched rule grants is a deny (fail closed).
func (a *Authorizer) Check(ctx context.Context, r *Request) Decision {
	rule := a.opts.Policy.Match(&policy.Request{Method: r.Method, Host: r.Host, Path: r.Path, ContextExtensions: r.ContextExtensions})
	d := a.decide(ctx, r, rule)
	if rule.DryRun && !d.Allowed() && ctx.Err() == nil {
		return a.DryRun(d) // the rule is being rolled out: answer its denies as marked allows
	}
	return d
}

// decide applies the matched rule to the request.
func (a *Authorizer) decide(ctx context.Context, r *Request, rule *policy.Rule) Decision {
	if err := ctx.Err(); err != nil {
		// Envoy gave up on us: whatever we answer is not used, but never allow on a cancelled request.
		return a.deny(rule, ReasonKeysUnavailable, err)
	}
	switch rule.Action {
	case policy.Deny:
		return a.deny(rule, ReasonRuleDenied, errRuleDenied)
	case policy.Allow:
		return a.anonymousAllow(rule)
	}
	raw, err := token.Extract(r.Headers, a.opts.Sources, a.opts.MaxBytes)
	var id *token.Identity
	var set []Header
	var remove, unset []string
	if err == nil {
		id, set, remove, unset, err = a.verify(ctx, raw)
	}
	if err != nil {
		// Optional: no credential is anonymous; a credential that does not verify is refused unless the
		// rule says to treat it like none. Either way no identity header reaches the upstream.
		if rule.Action == policy.Optional && (errors.Is(err, token.ErrMissing) || rule.AnonymousOnInvalid) {
			return a.anonymousAllow(rule)
		}
		return a.deny(rule, reasonOf(err), err)
	}
	if rule.Action == policy.Authenticated {
		s := policy.Subject{Pool: id.Pool, TokenUse: id.TokenUse, Groups: id.Groups, Scope: id.Scope, Claims: id.Claims}
		if u := rule.Require.Check(&s); u != policy.Met {
			d := a.forbidden[u]
			d.Rule, d.Identity = rule.Name, id
			d.Err = fmt.Errorf("rule %s: %s", rule.Name, d.Reason)
			return d
		}
	}
	return Decision{Outcome: Allow, Reason: ReasonOK, Identity: id, Rule: rule.Name, Headers: set, Remove: remove, Unset: unset}
}

// CacheLen is the number of tokens the verified-token cache holds (0 when it is off).
func (a *Authorizer) CacheLen() int {
	if a.cache == nil {
		return 0
	}
	return a.cache.c.EstimatedSize()
}

// verify returns raw's identity and its identity headers (to set, to remove, without a value), from the
// cache when it holds them; a cached deny comes back as its cause. Only the identity is cached, never the
// decision: the rule's requirements are checked on every request.
func (a *Authorizer) verify(ctx context.Context, raw string) (*token.Identity, []Header, []string, []string, error) {
	if a.cache == nil {
		id, err := a.opts.Verifier.Verify(ctx, raw)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		set, remove, unset := a.identityHeaders(id)
		return id, set, remove, unset, nil
	}
	k := key(raw)
	if e, ok := a.cache.lookup(k); ok {
		if a.opts.Cache.OnHit != nil {
			a.opts.Cache.OnHit()
		}
		if e.id == nil {
			return nil, nil, nil, nil, e.err
		}
		return e.id, e.headers, e.remove, e.unset, nil
	}
	if a.opts.Cache.OnMiss != nil {
		a.opts.Cache.OnMiss()
	}
	id, err := a.opts.Verifier.Verify(ctx, raw)
	if err != nil {
		a.cache.storeDeny(k, reasonOf(err), err)
		return nil, nil, nil, nil, err
	}
	set, remove, unset := a.identityHeaders(id)
	a.cache.storeAllow(k, id, &Decision{Headers: set, Remove: remove, Unset: unset})
	return id, set, remove, unset, nil
}

func (a *Authorizer) deny(rule *policy.Rule, r Reason, err error) Decision {
	d := a.denies[r]
	d.Rule = rule.Name
	d.Err = err
	return d
}

// anonymousAllow lets the request through without identity: every identity header is removed, so a client
// can never smuggle one upstream on a public route either.
func (a *Authorizer) anonymousAllow(rule *policy.Rule) Decision {
	return Decision{Outcome: Allow, Reason: ReasonAnonymous, Rule: rule.Name, Remove: a.anonymous, Unset: a.unset}
}

// identityHeaders sets every identity header the identity has a value for and removes all the others, so a
// client can never smuggle one of them upstream. unset is the identity headers of remove (its start).
func (a *Authorizer) identityHeaders(id *token.Identity) (set []Header, remove, unset []string) {
	h := a.opts.Headers
	set = make([]Header, 0, len(a.names))
	add := func(name, value string) {
		if name == "" {
			return
		}
		if value == "" || !headerSafe(value) {
			remove = append(remove, name)
			return
		}
		set = append(set, Header{name, value})
	}
	add(h.Sub, id.Subject)
	add(h.Username, id.Username)
	add(h.Groups, joinGroups(id.Groups))
	add(h.Scopes, id.Scope)
	add(h.ClientID, id.ClientID)
	add(h.TokenUse, id.TokenUse)
	add(h.Email, id.Email)
	add(h.Pool, id.Pool)
	for _, c := range slices.Sorted(maps.Keys(h.Claims)) {
		add(h.Claims[c], strings.Join(id.Claims[c], ","))
	}
	unset = slices.Clip(remove)
	if !a.opts.ForwardToken {
		remove = append(remove, "authorization")
	}
	// All may be shared by many Decisions (the cache): clip them so an append can never write into them.
	return slices.Clip(set), slices.Clip(remove), unset
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
