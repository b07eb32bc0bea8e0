package session

import (
	"fmt"
	"time"
)

// SealSession returns the Set-Cookie lines that carry s, exactly as a Flow with the same key ring, cookie
// options and insecure_http (Options.InsecureHTTP) writes them at sign-in. It is for tools that need
// signed-in browsers without running the Hosted UI (the load benchmark, tests): the service itself writes
// sessions only through a Flow, and nothing on the check path calls it. It fails for an expired session
// (at now) and with ErrTooLarge when s does not fit in the cookies a browser keeps.
func SealSession(keys *KeyRing, o CookieOptions, insecureHTTP bool, s *Session, now time.Time) ([]string, error) {
	switch {
	case keys == nil || len(keys.keys) == 0:
		return nil, fmt.Errorf("%w: no key", ErrKeys)
	case !s.Valid(now):
		return nil, fmt.Errorf("session: expired (or none) at %s", now.Format(time.RFC3339))
	}
	lines, ok := newCookies(o, !insecureHTTP).writeSession(keys, s, now, nil)
	if !ok {
		return nil, ErrTooLarge
	}
	return lines, nil
}
