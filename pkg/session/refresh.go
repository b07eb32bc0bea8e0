package session

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// recentTTL is how long a refresh's result answers for the old cookie: requests that left the browser
// before the new cookie arrived must not refresh again (with rotation, the old refresh token dies soon).
// A failure that is not the session's (the endpoint down) is remembered for failTTL, so the requests of a
// session in its refresh window do not each knock on a token endpoint that is down.
const (
	recentTTL = time.Minute
	failTTL   = 5 * time.Second
	maxRecent = 10000
)

// recentRefreshes remembers the sessions refreshes produced, by the old refresh token's hash.
type recentRefreshes struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]recent
}

type recent struct {
	s     *Session
	err   error
	until time.Time
}

func (r *recentRefreshes) get(k [sha256.Size]byte, now time.Time) (*Session, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.m[k]; ok && now.Before(e.until) {
		return e.s, e.err
	}
	return nil, nil
}

func (r *recentRefreshes) put(k [sha256.Size]byte, s *Session, err error, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[[sha256.Size]byte]recent{}
	}
	if len(r.m) >= maxRecent {
		for k, e := range r.m {
			if !now.Before(e.until) {
				delete(r.m, k)
			}
		}
		if len(r.m) >= maxRecent {
			return // full of live entries: the next request refreshes again, which is only slower
		}
	}
	ttl := recentTTL
	if err != nil {
		ttl = failTTL
	}
	r.m[k] = recent{s, err, now.Add(ttl)}
}

// Refresh renews s's tokens at the token endpoint and returns the new session with the Set-Cookie lines
// that store it. Parallel requests of one session share one token call per replica (single-flight), and
// requests that still carry the old cookie for a minute afterwards reuse its result. The session's
// Issued and Expires do not move. When the endpoint returns no refresh token the old one is kept.
//
// Errors: ErrSessionEnded (invalid_grant: the refresh token is revoked or expired) comes with the lines
// that clear the session; ErrUnavailable (timeout, 5xx, network, too many calls in flight) comes with no
// lines: the caller keeps allowing while the old access token is valid.
func (f *Flow) Refresh(ctx context.Context, r Request, s *Session) (*Session, []string, error) {
	if s == nil || s.RefreshToken == "" {
		return nil, nil, fmt.Errorf("%w: no refresh token", ErrSessionEnded)
	}
	k := sha256.Sum256([]byte(s.RefreshToken))
	now := f.now()
	ns, err := f.recent.get(k, now)
	if err != nil {
		return nil, nil, err
	}
	if ns == nil {
		ch := f.group.DoChan(string(k[:]), func() (any, error) {
			// Detached from the first caller: its cancellation must not fail the others sharing the call.
			ns, err := f.refresh(context.WithoutCancel(ctx), s)
			switch {
			case err == nil:
				f.recent.put(k, ns, nil, f.now())
			case errors.Is(err, ErrUnavailable):
				f.recent.put(k, nil, err, f.now())
			}
			return ns, err
		})
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		case res := <-ch:
			if res.Err != nil {
				if errors.Is(res.Err, ErrSessionEnded) {
					return nil, f.ClearCookies(r), res.Err
				}
				return nil, nil, res.Err
			}
			ns = res.Val.(*Session)
		}
	}
	lines, ok := f.cookies.writeSession(f.o.Keys, ns, now, r.cookieJar(f.cookies.base))
	if !ok {
		return nil, f.ClearCookies(r), fmt.Errorf("%w: %w", ErrSessionEnded, ErrTooLarge)
	}
	return ns, lines, nil
}

// refresh is one refresh_token grant.
func (f *Flow) refresh(ctx context.Context, s *Session) (*Session, error) {
	release, err := f.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	tctx, cancel := f.tokenContext(ctx)
	defer cancel()
	// oauth2's refresher keeps the old refresh token when the response carries none.
	tok, err := f.oauth.TokenSource(tctx, &oauth2.Token{RefreshToken: s.RefreshToken}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
			return nil, fmt.Errorf("%w: invalid_grant", ErrSessionEnded)
		}
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, tokenError(err))
	}
	ns, err := f.verify(ctx, tok, "")
	if err != nil {
		// Not the session's fault (the key set may be refreshing): keep it while the old token lasts.
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	ns.Issued, ns.Expires = s.Issued, s.Expires
	if ns.RefreshToken == "" {
		ns.RefreshToken = s.RefreshToken
	}
	return ns, nil
}
