package authz

import (
	"errors"
	"net/http"

	"github.com/cognito-authz/cognito-authz/pkg/policy"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// Outcome is the kind of answer: allow, or one of three denials.
type Outcome uint8

// The outcomes, as in the outcome table of the README.
const (
	Allow           Outcome = iota // upstream's status; identity headers set
	Unauthenticated                // 401: no valid token
	Forbidden                      // 403: valid token, requirement not met, or rule denies
	Unavailable                    // 503: the pool's keys were never loaded
	BadRequest                     // 400: the request cannot be judged (an ambiguous path, bad forwarded headers, a look-alike identity header)
	// Answered: the service answered the request itself (the browser sign-in flow's paths: login,
	// callback, logout); the Decision's Status says with what (302 mostly).
	Answered
)

var outcomeNames = [...]string{"allow", "unauthenticated", "forbidden", "unavailable", "bad_request", "answered"}

// String returns the outcome's metric and log label.
func (o Outcome) String() string { return outcomeNames[o] }

// HTTPStatus is the status Envoy sends the client on this outcome (0 for allow: the upstream decides).
func (o Outcome) HTTPStatus() int {
	return [...]int{0, http.StatusUnauthorized, http.StatusForbidden, http.StatusServiceUnavailable, http.StatusBadRequest, http.StatusFound}[o]
}

// HTTPStatus is the status the client gets on this decision: Status when set (a sign-in redirect's 302),
// else the outcome's.
func (d *Decision) HTTPStatus() int {
	if d.Status != 0 {
		return d.Status
	}
	return d.Outcome.HTTPStatus()
}

// Reason is a machine-readable cause: the same string is the deny body's "error", a metric label and a log
// field. The set is closed; Reasons lists it.
type Reason string

// The reasons.
const (
	ReasonOK               Reason = "ok"                  // allowed with a valid token
	ReasonAnonymous        Reason = "anonymous"           // allowed without identity: an allow rule, or optional without a token
	ReasonTokenMissing     Reason = "token_missing"       // no credential in any source
	ReasonTokenMalformed   Reason = "token_malformed"     // not a compact JWS, bad base64 or JSON
	ReasonTokenTooLarge    Reason = "token_too_large"     // over token.max_bytes, not parsed
	ReasonAlgNotAllowed    Reason = "alg_not_allowed"     // anything but RS256
	ReasonKIDMissing       Reason = "kid_missing"         // no kid header
	ReasonHeaderNotAllowed Reason = "header_not_allowed"  // jku, x5u, jwk, x5c or crit header
	ReasonIssuerUnknown    Reason = "issuer_unknown"      // iss is no configured pool's
	ReasonKeyUnknown       Reason = "key_unknown"         // kid not in the pool's JWKS, even after a refresh
	ReasonKeysUnavailable  Reason = "keys_unavailable"    // the pool's JWKS was never loaded (503)
	ReasonRequestCancelled Reason = "request_cancelled"   // the caller gave up (deadline or cancel) before the decision was made
	ReasonSignatureInvalid Reason = "signature_invalid"   // the signature does not verify
	ReasonTokenExpired     Reason = "token_expired"       // exp plus leeway has passed
	ReasonTokenNotYetValid Reason = "token_not_yet_valid" // nbf or iat is in the future
	ReasonClaimsInvalid    Reason = "claims_invalid"      // required claim missing, wrong type, or insane value
	ReasonTokenUseMismatch Reason = "token_use_mismatch"  // access where id is required, or the reverse
	ReasonClientMismatch   Reason = "client_mismatch"     // client_id / aud not among the pool's client_ids

	// Policy reasons: the request was authenticated (or needed not be) but a rule refuses it. All are 403.
	ReasonRuleDenied     Reason = "rule_denied"      // the matching rule's action is deny
	ReasonPoolNotAllowed Reason = "pool_not_allowed" // require.pools does not list the token's pool
	ReasonGroupRequired  Reason = "group_required"   // require.groups_any / groups_all not met
	ReasonScopeRequired  Reason = "scope_required"   // require.scopes_any / scopes_all not met
	ReasonClaimRequired  Reason = "claim_required"   // require.claims not met

	// Request reasons: the request cannot be judged as it stands. All are 400.
	ReasonPathAmbiguous    Reason = "path_ambiguous"    // readings of the path select different rules (paths.ambiguous: reject)
	ReasonForwardedInvalid Reason = "forwarded_invalid" // forwarded method/URI headers missing, repeated or of another proxy
	ReasonIdentitySpoofed  Reason = "identity_spoofed"  // a header named like an identity header with "_" for "-" (x_auth_sub)

	// Browser sign-in reasons (the browser: block).
	ReasonLoginRequired Reason = "login_required" // a login rule without a valid session or token: 302 to sign in, or 401 JSON
	ReasonSignIn        Reason = "sign_in"        // the login path, or a callback that signed in: 302
	ReasonSignOut       Reason = "sign_out"       // the logout path: cookies cleared, 302 to Cognito's /logout
	ReasonLoginFailed   Reason = "login_failed"   // a callback or logout that failed: a page with a sign-in link (4xx/502)
	// A valid token of the wrong kind for the route (require.token_use) is ReasonTokenUseMismatch with
	// outcome Forbidden, not the Unauthenticated of a pool that takes no such tokens: see forbidden.
)

// Reasons lists every reason, in the order of the README's table.
var Reasons = []Reason{
	ReasonOK, ReasonAnonymous, ReasonTokenMissing, ReasonTokenMalformed, ReasonTokenTooLarge, ReasonAlgNotAllowed,
	ReasonKIDMissing, ReasonHeaderNotAllowed, ReasonIssuerUnknown, ReasonKeyUnknown, ReasonKeysUnavailable, ReasonRequestCancelled,
	ReasonSignatureInvalid, ReasonTokenExpired, ReasonTokenNotYetValid, ReasonClaimsInvalid,
	ReasonTokenUseMismatch, ReasonClientMismatch,
	ReasonRuleDenied, ReasonPoolNotAllowed, ReasonGroupRequired, ReasonScopeRequired, ReasonClaimRequired,
	ReasonPathAmbiguous, ReasonForwardedInvalid, ReasonIdentitySpoofed,
	ReasonLoginRequired, ReasonSignIn, ReasonSignOut, ReasonLoginFailed,
}

// allowReasons are the reasons of an allow: they have no deny.
var allowReasons = []Reason{ReasonOK, ReasonAnonymous}

// reasonInfo is the outcome and the client-facing description of each deny reason. Descriptions are fixed
// text: they never echo the token or its claims.
var reasonInfo = map[Reason]struct {
	outcome Outcome
	text    string
}{
	ReasonTokenMissing:     {Unauthenticated, "no bearer token in the request"},
	ReasonTokenMalformed:   {Unauthenticated, "the token is not a well-formed JWT"},
	ReasonTokenTooLarge:    {Unauthenticated, "the token is longer than this service accepts"},
	ReasonAlgNotAllowed:    {Unauthenticated, "the token is not signed with RS256"},
	ReasonKIDMissing:       {Unauthenticated, "the token header has no key id"},
	ReasonHeaderNotAllowed: {Unauthenticated, "the token header names keys or extensions that are not honoured"},
	ReasonIssuerUnknown:    {Unauthenticated, "the token was not issued by a trusted user pool"},
	ReasonKeyUnknown:       {Unauthenticated, "the token is signed with an unknown key"},
	ReasonKeysUnavailable:  {Unavailable, "the signing keys of the token's user pool are not available yet"},
	ReasonRequestCancelled: {Unavailable, "the request was cancelled before it was decided"},
	ReasonSignatureInvalid: {Unauthenticated, "the token signature is invalid"},
	ReasonTokenExpired:     {Unauthenticated, "the token has expired"},
	ReasonTokenNotYetValid: {Unauthenticated, "the token is not valid yet"},
	ReasonClaimsInvalid:    {Unauthenticated, "the token claims are missing or invalid"},
	ReasonTokenUseMismatch: {Unauthenticated, "the token is of the wrong type (access or id)"},
	ReasonClientMismatch:   {Unauthenticated, "the token was issued to an app client that is not allowed"},
	ReasonRuleDenied:       {Forbidden, "this route is closed by policy"},
	ReasonPoolNotAllowed:   {Forbidden, "tokens of this user pool may not call this route"},
	ReasonGroupRequired:    {Forbidden, "the token lacks a group this route requires"},
	ReasonScopeRequired:    {Forbidden, "the token lacks a scope this route requires"},
	ReasonClaimRequired:    {Forbidden, "the token lacks a claim value this route requires"},
	ReasonPathAmbiguous:    {BadRequest, "the request path means different routes to different servers"},
	ReasonForwardedInvalid: {BadRequest, "the forwarded request headers are missing, repeated or of another proxy"},
	ReasonIdentitySpoofed:  {BadRequest, "a request header is named like an identity header"},
	ReasonLoginRequired:    {Unauthenticated, "sign in first"},
	ReasonSignIn:           {Answered, "signing in"},
	ReasonSignOut:          {Answered, "signed out"},
	ReasonLoginFailed:      {Answered, "sign-in could not be completed"},
}

// forbidden maps an unmet requirement onto its reason and, for the one reason that is also a 401, the 403
// description it has here.
var forbidden = [...]struct {
	reason Reason
	text   string
}{
	policy.UnmetPool:     {ReasonPoolNotAllowed, ""},
	policy.UnmetTokenUse: {ReasonTokenUseMismatch, "this route requires the other kind of token (access or id)"},
	policy.UnmetGroup:    {ReasonGroupRequired, ""},
	policy.UnmetScope:    {ReasonScopeRequired, ""},
	policy.UnmetClaim:    {ReasonClaimRequired, ""},
}

// reasonOf maps a token error onto its reason. Unknown errors are malformed: fail closed.
func reasonOf(err error) Reason {
	for _, m := range []struct {
		err    error
		reason Reason
	}{
		{token.ErrMissing, ReasonTokenMissing},
		{token.ErrTooLarge, ReasonTokenTooLarge},
		{token.ErrKeysUnavailable, ReasonKeysUnavailable},
		{token.ErrKeyUnknown, ReasonKeyUnknown},
		{token.ErrAlgorithm, ReasonAlgNotAllowed},
		{token.ErrKIDMissing, ReasonKIDMissing},
		{token.ErrHeader, ReasonHeaderNotAllowed},
		{token.ErrIssuer, ReasonIssuerUnknown},
		{token.ErrSignature, ReasonSignatureInvalid},
		{token.ErrExpired, ReasonTokenExpired},
		{token.ErrNotYetValid, ReasonTokenNotYetValid},
		{token.ErrClaims, ReasonClaimsInvalid},
		{token.ErrTokenUse, ReasonTokenUseMismatch},
		{token.ErrClient, ReasonClientMismatch},
	} {
		if errors.Is(err, m.err) {
			return m.reason
		}
	}
	return ReasonTokenMalformed
}
