package authz

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"

	"github.com/cognito-authz/cognito-authz/pkg/policy"
	"github.com/cognito-authz/cognito-authz/pkg/session"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// Browser sign-in (Options.Session) on the check path:
//
//   - the flow's own paths (login, callback, logout) on an allowed host are answered by the flow, whatever
//     the rules say (outcome Answered: never turned into an allow by a dry run);
//   - for login, authenticated and optional rules, a request with no token in any source uses its session
//     cookie: the session's access token goes through the same verifier and verified-token cache as a
//     Bearer token (under a key of its own, since the identity is completed from the session's ID-token
//     claims), refreshed first when due;
//   - a login rule without a valid credential is a Challenge: 302 to sign in for a browser navigation,
//     401 login_required JSON otherwise; other rules keep their 401 or anonymous allow;
//   - Set-Cookie from a refresh, or clearing a dead or unreadable session, goes on the answer, allow or deny
//     (Decision.ResponseHeaders on an allow, Headers on a deny); such a Decision is built for one request
//     and has no Slot;
//   - our cookies never reach the upstream (stripCookies), and forward_token sends the session's access
//     token as Authorization: Bearer.

// flowRule names the decisions the flow's paths make, in logs and metrics.
var flowRule = &policy.Rule{Name: "browser"}

// errNoSession is the logged cause of a login_required without any session.
var errNoSession = errors.New("no session")

func sessionRequest(r *Request) session.Request {
	return session.Request{Method: r.Method, Host: r.Host, Path: r.Path, Headers: r.Headers}
}

// answer turns a flow Response into the Decision that sends it: sign_in (the login path, a callback that
// signed in), sign_out, or login_failed (any answer with an error: a refused callback, a cross-origin
// logout, a Host not in allowed_hosts).
func answer(f *session.Flow, r session.Request, resp session.Response) Decision {
	reason := ReasonSignIn
	switch {
	case resp.Err != nil:
		reason = ReasonLoginFailed
	case f.IsLogout(r):
		reason = ReasonSignOut
	}
	d := Decision{Outcome: Answered, Reason: reason, Status: resp.Status, Body: resp.Body, Rule: flowRule.Name,
		Description: reasonInfo[reason].text, Err: resp.Err}
	d.Headers = make([]Header, len(resp.Headers))
	for i, h := range resp.Headers {
		d.Headers[i] = Header{strings.ToLower(h.Name), h.Value}
	}
	return d
}

// sessionCredential reads the request's session into c (refreshing it when due): its access token is
// verified like a Bearer token. Without a usable session c keeps token.ErrMissing, with the lines that
// clear a dead or unreadable session.
func (a *Authorizer) sessionCredential(ctx context.Context, r *Request, c *credential) {
	f := a.opts.Session
	sr := sessionRequest(r)
	cred := f.Credential(ctx, sr)
	c.cookies = cred.SetCookies
	if cred.AccessToken == "" {
		if !cred.Ended {
			if h := r.Headers.Get("cookie"); h != "" && f.StripCookies(h) != h {
				c.cookies = f.ClearCookies(sr) // a tampered, truncated or expired session: tell the browser
			}
		}
		if cred.Err != nil {
			c.err = errors.Join(token.ErrMissing, cred.Err)
		}
		return
	}
	c.session = &cred
	c.err = nil // token.ErrMissing from the token sources; verify sets only what it finds
	a.verify(ctx, cred.AccessToken, cred.Session, c)
}

// completeIdentity fills what the access token lacks from the session's verified ID-token claims (e-mail,
// the claims the identity headers and rules read). The token's own values win. id is not changed.
func completeIdentity(id *token.Identity, s *session.Session) *token.Identity {
	if s == nil || (id.Email != "" || s.Email == "") && len(s.Claims) == 0 {
		return id
	}
	c := *id
	if c.Email == "" {
		c.Email = s.Email
	}
	if len(s.Claims) > 0 {
		c.Claims = maps.Clone(id.Claims)
		if c.Claims == nil {
			c.Claims = map[string][]string{}
		}
		for k, v := range s.Claims {
			if _, ok := c.Claims[k]; !ok {
				c.Claims[k] = v
			}
		}
	}
	return &c
}

// withSession adds to a decision made with a session credential what the session brings: the Set-Cookie
// lines (on the downstream response of an allow, on the deny itself otherwise) and, with forward_token,
// the access token as Authorization: Bearer for the upstream.
func (a *Authorizer) withSession(r *Request, c *credential, d *Decision) {
	if d.Allowed() && d.Reason == ReasonOK && a.opts.ForwardToken && c.session != nil {
		d.Headers = append(slices.Clip(d.Headers), Header{token.AuthorizationHeader, "Bearer " + c.session.AccessToken})
		d.Slot = nil
	}
	addCookies(d, c.cookies)
}

// addCookies puts Set-Cookie lines on d: the downstream response of an allow, or the deny's own headers.
func addCookies(d *Decision, lines []string) {
	if len(lines) == 0 {
		return
	}
	d.Slot = nil // per request from here on
	if d.Allowed() {
		for _, l := range lines {
			d.ResponseHeaders = append(d.ResponseHeaders, Header{"set-cookie", l})
		}
		return
	}
	hs := slices.Clip(d.Headers)
	for _, l := range lines {
		hs = append(hs, Header{"set-cookie", l})
	}
	d.Headers = hs
}

// challenge is a login rule's answer to a request without a valid credential: sign in (302) for a
// browser navigation, 401 login_required JSON otherwise, plus whatever the session's cookies need.
func (a *Authorizer) challenge(r *Request, rule *policy.Rule, c *credential, err error) Decision {
	f := a.opts.Session
	if f == nil {
		// No browser: block: a login rule is an authenticated one (config check warns of it).
		d := a.denies[ReasonLoginRequired]
		d.Rule, d.Err = rule.Name, err
		return d
	}
	resp := f.Challenge(sessionRequest(r))
	if errors.Is(err, token.ErrMissing) && c.session == nil {
		err = errors.Join(errNoSession, err)
	}
	d := Decision{Outcome: Unauthenticated, Reason: ReasonLoginRequired, Status: resp.Status, Body: resp.Body,
		Rule: rule.Name, Description: reasonInfo[ReasonLoginRequired].text, Err: err}
	if resp.Err != nil && !errors.Is(resp.Err, session.ErrLoginRequired) {
		d.Err = errors.Join(err, resp.Err) // e.g. a Host not in allowed_hosts: no redirect_uri is built
	}
	for _, h := range resp.Headers {
		d.Headers = append(d.Headers, Header{strings.ToLower(h.Name), h.Value})
	}
	addCookies(&d, c.cookies)
	return d
}
