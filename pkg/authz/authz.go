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

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/cognito-authz/cognito-authz/pkg/policy"
	"github.com/cognito-authz/cognito-authz/pkg/session"
	"github.com/cognito-authz/cognito-authz/pkg/token"
	"github.com/cognito-authz/cognito-authz/pkg/tracing"
)

// Request is what the decision needs of an HTTP request, whichever transport carried it.
type Request struct {
	Method            string
	Host              string
	Path              string // as received: may hold a query string
	Headers           token.Headers
	ContextExtensions map[string]string
	RequestID         string
	// Invalid, when set, says why the transport could not tell which request to judge (the forwarded
	// headers of an HTTP check are missing, repeated or of another proxy): it is refused as
	// forwarded_invalid, with this as the logged cause.
	Invalid error
}

// Header is one header to set.
type Header struct{ Name, Value string }

// Decision is the answer to one Request.
type Decision struct {
	Outcome     Outcome
	Reason      Reason
	Description string   // client-facing, fixed text
	Headers     []Header // allow: identity headers to set; deny: headers of the deny response (may repeat: Set-Cookie)
	Remove      []string // allow: identity headers to remove from the request (every one not set)
	// ResponseHeaders go to the downstream response of an allow, each its own header (Set-Cookie of a
	// refreshed session). A Decision that has any is built for one request: its Slot is nil.
	ResponseHeaders []Header
	// Status, when set, is the deny's HTTP status instead of the outcome's (302 of a sign-in redirect).
	Status int
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
	// Slot, when set, belongs to the shared parts of this decision (a prebuilt deny, a cached identity):
	// see Slot. Nil on every decision built for one request.
	Slot *Slot
}

// Allowed reports whether the request may proceed.
func (d *Decision) Allowed() bool { return d.Outcome == Allow }

// IdentityHeaders names the headers the upstream receives. Empty names are not sent.
type IdentityHeaders struct {
	Sub, Username, Groups, Scopes, ClientID, TokenUse, Email, Pool string
	Claims                                                         map[string]string // claim → header
}

// IdentityField is one fact of a verified token that goes upstream as a header. IdentityFields is the one
// ordered list of them: config decoding and validation, header building, the cache's weight estimate and
// anonymous removal all iterate it, so adding a header is one line there (and its field above).
type IdentityField struct {
	Key     string                         // its key under identity: in the config file
	Default string                         // its default header name
	Name    func(*IdentityHeaders) *string // where its header name is kept
	value   func(*token.Identity) string   // its header value
	list    bool                           // value joins a list (weighed per item by the cache)
}

// IdentityFields lists the identity headers in the order they are set and removed.
var IdentityFields = []IdentityField{
	{Key: "sub", Default: "x-auth-sub", Name: func(h *IdentityHeaders) *string { return &h.Sub }, value: func(id *token.Identity) string { return id.Subject }},
	{Key: "username", Default: "x-auth-username", Name: func(h *IdentityHeaders) *string { return &h.Username }, value: func(id *token.Identity) string { return id.Username }},
	{Key: "groups", Default: "x-auth-groups", Name: func(h *IdentityHeaders) *string { return &h.Groups }, value: func(id *token.Identity) string { return joinGroups(id.Groups) }, list: true},
	{Key: "scopes", Default: "x-auth-scopes", Name: func(h *IdentityHeaders) *string { return &h.Scopes }, value: func(id *token.Identity) string { return id.Scope }},
	{Key: "client_id", Default: "x-auth-client-id", Name: func(h *IdentityHeaders) *string { return &h.ClientID }, value: func(id *token.Identity) string { return id.ClientID }},
	{Key: "token_use", Default: "x-auth-token-use", Name: func(h *IdentityHeaders) *string { return &h.TokenUse }, value: func(id *token.Identity) string { return id.TokenUse }},
	{Key: "email", Default: "x-auth-email", Name: func(h *IdentityHeaders) *string { return &h.Email }, value: func(id *token.Identity) string { return id.Email }},
	{Key: "pool", Default: "x-auth-pool", Name: func(h *IdentityHeaders) *string { return &h.Pool }, value: func(id *token.Identity) string { return id.Pool }},
}

// DefaultIdentityHeaders names every identity header by its default name, and no claims.
func DefaultIdentityHeaders() IdentityHeaders {
	var h IdentityHeaders
	for _, f := range IdentityFields {
		*f.Name(&h) = f.Default
	}
	return h
}

// Names lists every configured header name, fixed fields first, then claims in claim order.
func (h IdentityHeaders) Names() []string {
	var out []string
	for _, f := range IdentityFields {
		if n := *f.Name(&h); n != "" {
			out = append(out, n)
		}
	}
	for _, c := range slices.Sorted(maps.Keys(h.Claims)) {
		if n := h.Claims[c]; n != "" {
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
	// ForwardToken false keeps the token from the upstream wherever it was read: Authorization and every
	// header source are removed, and the Cookie header is rewritten without the cookie sources' cookies.
	ForwardToken bool
	// DryRun answers every deny as an allow, marked (see Authorizer.DryRun), as a rule's DryRun does for
	// that rule's denies. Check applies both, after its cancellation guard.
	DryRun bool
	// Cache bounds the verified-token cache; the zero value turns it off.
	Cache CacheOptions
	// RejectAmbiguousPaths refuses (400 path_ambiguous) a request whose path readings select different
	// rules, instead of judging it by all of them (see Check).
	RejectAmbiguousPaths bool
	// Session, when set, is browser sign-in (see browser.go): its paths are answered on its allowed hosts
	// whatever the rules say, a session cookie is a credential for login, authenticated and optional rules
	// when no token source has one, and its cookies never reach the upstream.
	Session *session.Flow
}

// Authorizer makes Decisions. It is safe for concurrent use.
type Authorizer struct {
	opts      Options
	names     []string                 // every identity header
	denies    map[Reason]Decision      // prebuilt: bodies and headers are fixed per reason
	forbidden [len(forbidden)]Decision // prebuilt, by policy.Unmet
	anonymous []string                 // what an anonymous allow removes: every identity header (and the token's headers)
	unset     []string                 // what an anonymous allow leaves unset: every identity header (anonymous's start)
	stripped  []string                 // forward_token false: the headers a token is read from (authorization first)
	cookies   []string                 // forward_token false: the cookies a token is read from
	cache     *tokenCache              // nil: off
	spoofable map[string]string        // canonical name → identity header (see lookalikes)
}

// errRuleDenied is the logged cause of a deny rule.
var errRuleDenied = errors.New("the matching rule denies every request")

// errAmbiguous is the logged cause of a path_ambiguous deny.
var errAmbiguous = errors.New("readings of the path select different rules")

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
	a := &Authorizer{opts: opts, names: opts.Headers.Names(), denies: map[Reason]Decision{}}
	a.spoofable = lookalikes(a.names)
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
	if !opts.ForwardToken {
		a.stripped = []string{token.AuthorizationHeader}
		for _, s := range opts.Sources {
			switch {
			case s.Cookie != "" && !slices.Contains(a.cookies, s.Cookie):
				a.cookies = append(a.cookies, s.Cookie)
			case s.Header != "" && !slices.Contains(a.stripped, s.Header):
				a.stripped = append(a.stripped, s.Header)
			}
		}
	}
	a.anonymous = slices.Concat(a.names, a.stripped)
	a.anonymous = slices.Clip(a.anonymous)            // a caller appending to Remove must not write into the shared array
	a.unset = slices.Clip(a.anonymous[:len(a.names)]) // shares anonymous's array; both read-only
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
	return Decision{Outcome: o, Reason: r, Description: text, Headers: hs, Body: string(body) + "\n", Slot: &Slot{}}
}

// Check decides one request. It never panics and never blocks longer than ctx allows; every path that is
// not an allow the matched rule grants is a deny (fail closed).
//
// Cross-cutting modes are applied here, once, after the cancellation guard: a request the caller gave up on
// is denied request_cancelled whatever the mode (its answer is not used, but it must never be an allow, nor
// be counted as a missing key); then a dry run (global, Options.DryRun, or the deciding rule's) answers a
// deny as a marked allow, but for identity_spoofed: a dry run's allow removes the identity headers, which
// cannot remove a look-alike, so the upstream would take the client's value for the identity.
func (a *Authorizer) Check(ctx context.Context, r *Request) Decision {
	d, rule := a.judge(ctx, r)
	if err := ctx.Err(); err != nil {
		// Also after judging: a verification cut short by the cancel fails with the key set's error.
		return a.deny(rule, ReasonRequestCancelled, err)
	}
	if !d.Allowed() && d.Outcome != Answered && d.Reason != ReasonIdentitySpoofed && (a.opts.DryRun || rule.DryRun) {
		d = a.DryRun(d)
	}
	if d.Allowed() && (len(a.cookies) > 0 || a.opts.Session != nil) {
		a.stripCookies(r, &d)
	}
	return d
}

// judge decides r by every rule the readings of its path select (policy.Select: the upstream may serve
// any of those routes), and returns the decision with the rule that made it. The request is allowed only
// if every rule allows it: the first deny of a rule not in dry run (the normal reading's rule first, then
// in policy order) is the answer; failing that, the first deny of a rule in dry run (so a rule being
// rolled out never hides the deny of one that is not); and of the allows, the strictest rule's. With
// RejectAmbiguousPaths a path whose readings select several rules is refused with path_ambiguous instead.
func (a *Authorizer) judge(ctx context.Context, r *Request) (Decision, *policy.Rule) {
	if r.Invalid != nil {
		rule := &policy.Rule{}
		return a.deny(rule, ReasonForwardedInvalid, r.Invalid), rule
	}
	if name, id, ok := a.lookalike(r); ok {
		rule := &policy.Rule{} // the refusal is the service's, never a rule's (nor a dry run's)
		return a.deny(rule, ReasonIdentitySpoofed, fmt.Errorf("%w: %q reads as %s to CGI and WSGI upstreams", errLookalike, name, id)), rule
	}
	if f := a.opts.Session; f != nil {
		sr := sessionRequest(r)
		if resp, ok := f.Serve(ctx, sr); ok {
			return answer(f, sr, resp), flowRule
		}
	}
	rules := a.opts.Policy.Select(&policy.Request{Method: r.Method, Host: r.Host, Path: r.Path, ContextExtensions: r.ContextExtensions})
	if len(rules) > 1 && a.opts.RejectAmbiguousPaths {
		// The refusal is the mode's, not a rule's: a dry run of the first rule must not turn it into an allow.
		mode := &policy.Rule{Name: rules[0].Name}
		return a.deny(mode, ReasonPathAmbiguous, fmt.Errorf("%w: %s", errAmbiguous, ruleNames(rules))), mode
	}
	var c credential
	var best, dry Decision
	var bestRule, dryRule *policy.Rule
	bestRank := -1
	for _, rule := range rules {
		d := a.decide(ctx, r, rule, &c)
		if !d.Allowed() {
			if !rule.DryRun {
				return d, rule
			}
			if dryRule == nil {
				dry, dryRule = d, rule
			}
			continue
		}
		if s := strictness(rule.Action); s > bestRank {
			best, bestRule, bestRank = d, rule, s
		}
	}
	if dryRule != nil {
		return dry, dryRule
	}
	return best, bestRule
}

// strictness orders the actions that can allow: an optional rule still refuses an invalid token, an
// authenticated one needs a valid token, a login one too (and sends a browser without one to sign in).
func strictness(a policy.Action) int {
	return [...]int{policy.Allow: 0, policy.Optional: 1, policy.Authenticated: 2, policy.Login: 3, policy.Deny: 4}[a]
}

func ruleNames(rules []*policy.Rule) string {
	names := make([]string, len(rules))
	for i, r := range rules {
		names[i] = r.Name
	}
	return strings.Join(names, ", ")
}

// credential is the request's token, found and verified at most once however many rules judge it.
type credential struct {
	done          bool
	id            *token.Identity
	set           []Header // identity headers to set
	remove, unset []string // to remove (the identity headers without a value, then the token's); unset: just those identity headers
	slot          *Slot
	err           error
	// The browser session, when it is the credential (no token source had one): see browser.go.
	session *session.Credential
	cookies []string // Set-Cookie for the downstream response: a refreshed session, or clearing a dead one
	bearer  bool     // a token source had a token
}

func (a *Authorizer) credential(ctx context.Context, r *Request, c *credential) {
	if c.done {
		return
	}
	c.done = true
	var raw string
	// Find, not Extract: verify looks the token up by its digest, and gives every token it does not hold
	// to the Verifier, which checks its shape first. A hit is a token that passed that check.
	raw, c.err = token.Find(r.Headers, a.opts.Sources, a.opts.MaxBytes)
	if c.err == nil {
		c.bearer = true
		a.verify(ctx, raw, nil, c)
		return
	}
	if a.opts.Session != nil && errors.Is(c.err, token.ErrMissing) {
		a.sessionCredential(ctx, r, c)
	}
}

// stripCookies keeps the token cookies of an allowed request from the upstream (forward_token false): the
// Cookie header is set without them, or removed when nothing else is left. Only a request that carries one
// pays for it.
func (a *Authorizer) stripCookies(r *Request, d *Decision) {
	line := r.Headers.Get("cookie")
	if line == "" {
		return
	}
	rest, dropped := line, false
	if len(a.cookies) > 0 {
		rest, dropped = token.WithoutCookies(line, a.cookies)
	}
	if f := a.opts.Session; f != nil {
		if s := f.StripCookies(rest); s != rest {
			rest, dropped = s, true
		}
	}
	if dropped {
		// The request's own Cookie header is now part of the answer: it must be encoded for this answer
		// alone, never kept in a Slot another request's answer is served from.
		d.Slot = nil
	}
	switch {
	case !dropped:
	case rest == "":
		d.Remove = append(slices.Clip(d.Remove), "cookie") // Remove may be shared: Clip makes append copy
	default:
		d.Headers = append(slices.Clip(d.Headers), Header{"cookie", rest})
	}
}

// decide applies one rule to the request; c holds the request's credential once looked at.
func (a *Authorizer) decide(ctx context.Context, r *Request, rule *policy.Rule, c *credential) (d Decision) {
	if err := ctx.Err(); err != nil {
		return a.deny(rule, ReasonRequestCancelled, err) // Check's guard says the same; verifying would be wasted work
	}
	switch rule.Action {
	case policy.Deny:
		return a.deny(rule, ReasonRuleDenied, errRuleDenied)
	case policy.Allow:
		return a.anonymousAllow(rule)
	}
	a.credential(ctx, r, c)
	id, err := c.id, c.err
	if err != nil && rule.Action == policy.Login && !c.bearer {
		return a.challenge(r, rule, c, err)
	}
	if c.session != nil || len(c.cookies) > 0 {
		defer a.withSession(r, c, &d)
	}
	if err != nil {
		// Optional: no credential is anonymous; a credential that does not verify is refused unless the
		// rule says to treat it like none. Either way no identity header reaches the upstream.
		// A session whose token no longer verifies (expired while the token endpoint is down) is no
		// credential either: the browser did not present it as one.
		if rule.Action == policy.Optional && (errors.Is(err, token.ErrMissing) || rule.AnonymousOnInvalid || c.session != nil) {
			return a.anonymousAllow(rule)
		}
		return a.deny(rule, reasonOf(err), err)
	}
	if rule.Action == policy.Authenticated || rule.Action == policy.Login {
		s := policy.Subject{Pool: id.Pool, TokenUse: id.TokenUse, Groups: id.Groups, Scope: id.Scope, Claims: id.Claims}
		if u := rule.Require.Check(&s); u != policy.Met {
			d := a.forbidden[u]
			d.Rule, d.Identity = rule.Name, id
			d.Err = fmt.Errorf("rule %s: %s", rule.Name, d.Reason)
			return d
		}
	}
	return Decision{Outcome: Allow, Reason: ReasonOK, Identity: id, Rule: rule.Name, Headers: c.set, Remove: c.remove, Unset: c.unset, Slot: c.slot}
}

// CacheLen is the number of tokens the verified-token cache holds (0 when it is off).
func (a *Authorizer) CacheLen() int {
	if a.cache == nil {
		return 0
	}
	return a.cache.size()
}

// verify finds raw's identity and its identity headers (to set, to remove, without a value) and puts them in
// c, from the cache when it holds them; a cached deny comes back as its cause in c.err. Only the identity is
// cached, never the decision: the rule's requirements are checked on every request. A cache hit also gives
// the entry's Slot: a token used once never gets its answer encoded twice, nor kept.
//
// s, when set, is the browser session raw came from: the identity is completed from its ID-token claims
// (completeIdentity) and cached under a key of its own, so a Bearer use of the same token never gets them.
func (a *Authorizer) verify(ctx context.Context, raw string, s *session.Session, c *credential) {
	if a.cache == nil {
		if c.id, c.err = a.verifyTraced(ctx, raw); c.err == nil {
			c.id = completeIdentity(c.id, s)
			c.set, c.remove, c.unset = a.identityHeaders(c.id)
		}
		return
	}
	k := key(raw)
	if s != nil {
		k[0] ^= 0x80 // the session's entry: a second preimage of a flipped digest is as hard as of the digest
	}
	if e, ok := a.cache.lookup(k); ok {
		if a.opts.Cache.OnHit != nil {
			a.opts.Cache.OnHit()
		}
		if sp := trace.SpanFromContext(ctx); sp.IsRecording() {
			sp.AddEvent("cache.hit")
		}
		if e.id == nil {
			c.err = e.err
			return
		}
		c.id, c.set, c.remove, c.unset, c.slot = e.id, e.headers, e.remove, e.unset, &e.slot
		return
	}
	if a.opts.Cache.OnMiss != nil {
		a.opts.Cache.OnMiss()
	}
	if c.id, c.err = a.verifyTraced(ctx, raw); c.err != nil {
		a.cache.storeDeny(k, reasonOf(c.err), c.err)
		return
	}
	c.id = completeIdentity(c.id, s)
	c.set, c.remove, c.unset = a.identityHeaders(c.id)
	a.cache.storeAllow(k, c.id, &Decision{Headers: c.set, Remove: c.remove, Unset: c.unset})
}

// verifyTraced verifies raw, in a token.verify span when the Check is traced.
func (a *Authorizer) verifyTraced(ctx context.Context, raw string) (*token.Identity, error) {
	ctx, span := tracing.Start(ctx, "token.verify")
	id, err := a.opts.Verifier.Verify(ctx, raw)
	if span.IsRecording() {
		if err != nil {
			span.SetAttributes(attribute.String("authz.reason", string(reasonOf(err))))
		} else {
			span.SetAttributes(attribute.String("token.pool", id.Pool), attribute.String("token.kid", id.KID))
		}
		span.End()
	}
	return id, err
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
	for _, f := range IdentityFields {
		add(*f.Name(&h), f.value(id))
	}
	for _, c := range slices.Sorted(maps.Keys(h.Claims)) {
		add(h.Claims[c], strings.Join(id.Claims[c], ","))
	}
	unset = slices.Clip(remove)
	remove = append(remove, a.stripped...)
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
