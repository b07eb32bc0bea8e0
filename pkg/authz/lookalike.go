package authz

import (
	"errors"
	"strings"
)

// HeaderLister is a request's headers that can list their names; every transport's do. A Check reads the
// names only to refuse look-alikes of the identity headers (see lookalike).
type HeaderLister interface {
	// UnderscoredNames lists the header names that contain "_": nil when there are none, as there almost
	// always are not, so a Check allocates nothing for it.
	UnderscoredNames() []string
}

// errLookalike is the logged cause of an identity_spoofed deny.
var errLookalike = errors.New("a request header is named like an identity header")

// canonical is a header name as CGI, WSGI, Rack and PHP upstreams read it: case folded and "_" taken for
// "-" (both x-auth-sub and x_auth_sub are HTTP_X_AUTH_SUB to them).
func canonical(name string) string { return strings.ToLower(strings.ReplaceAll(name, "_", "-")) }

// lookalikes maps each identity header's canonical name to the header: a request header that is not the
// header itself but has its canonical name would reach such an upstream as the identity, and neither
// Envoy's headers_to_remove nor a forward-auth proxy's copied headers replace it (they name the real one).
func lookalikes(names []string) map[string]string {
	m := make(map[string]string, len(names))
	for _, n := range names {
		if strings.Contains(n, "-") {
			m[canonical(n)] = n
		}
	}
	return m
}

// lookalike returns the first request header with "_" in its name that an upstream would read as an
// identity header, and that identity header. Envoy's own configs here drop such names
// (headers_with_underscores_action: DROP_HEADER) and nginx ignores them; Envoy's default, Istio, Caddy and
// Traefik pass them on.
func (a *Authorizer) lookalike(r *Request) (name, identity string, found bool) {
	l, ok := r.Headers.(HeaderLister)
	if !ok || len(a.spoofable) == 0 {
		return "", "", false
	}
	for _, n := range l.UnderscoredNames() {
		if id, ok := a.spoofable[canonical(n)]; ok {
			return n, id, true
		}
	}
	return "", "", false
}
