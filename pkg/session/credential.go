package session

import (
	"context"
	"errors"
)

// Credential is what a session contributes to one request on the check path.
type Credential struct {
	// AccessToken is the token to verify, through the same verifier and verified-token cache as a Bearer
	// token; empty when the request has no usable session.
	AccessToken string
	// Session is the (possibly refreshed) session: its Email and Claims fill the identity headers the
	// access token cannot. Read-only.
	Session *Session
	// SetCookies go to the downstream response, on an allow and on a deny alike: a refreshed session, or
	// the lines that clear an ended one.
	SetCookies []string
	// Ended reports that the session was ended by the token endpoint (invalid_grant): the request has no
	// credential, and a login route signs in again.
	Ended bool
	// Err is the refresh failure kept for logs, if any (ErrUnavailable: the old access token is used while
	// it lasts).
	Err error
}

// Credential reads the request's session and refreshes it when due. The token endpoint being down is not
// an error here: the old access token is returned and the verifier decides whether it still holds, so a
// Cognito outage costs signed-in users nothing until their tokens expire, and never loops.
func (f *Flow) Credential(ctx context.Context, r Request) Credential {
	s := f.Load(r)
	if s == nil {
		return Credential{}
	}
	if !f.RefreshDue(s) {
		return Credential{AccessToken: s.AccessToken, Session: s}
	}
	ns, lines, err := f.Refresh(ctx, r, s)
	switch {
	case err == nil:
		return Credential{AccessToken: ns.AccessToken, Session: ns, SetCookies: lines}
	case errors.Is(err, ErrSessionEnded):
		return Credential{SetCookies: lines, Ended: true, Err: err}
	default:
		return Credential{AccessToken: s.AccessToken, Session: s, Err: err}
	}
}
