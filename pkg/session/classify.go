package session

import (
	"mime"
	"net/http"
	"strings"

	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// IsNavigation reports whether a request is a browser navigation that may be redirected to sign in: a GET
// or HEAD with Sec-Fetch-Mode: navigate (or, from browsers that send no Sec-Fetch-Mode, an Accept listing
// text/html), and none of the marks of a program: Upgrade (WebSocket), X-Requested-With: XMLHttpRequest,
// an Authorization header, a CORS preflight. Everything else gets 401 JSON with the login URL, so a
// single-page app can navigate itself; redirecting an XHR to HTML helps nobody. Header names are lower case.
func IsNavigation(method string, h token.Headers) bool {
	if method != http.MethodGet && method != http.MethodHead {
		return false // a preflight is OPTIONS, so it is never one
	}
	if h.Get("upgrade") != "" || h.Get("authorization") != "" ||
		strings.EqualFold(strings.TrimSpace(h.Get("x-requested-with")), "XMLHttpRequest") {
		return false
	}
	if mode := strings.TrimSpace(h.Get("sec-fetch-mode")); mode != "" {
		return strings.EqualFold(mode, "navigate")
	}
	return acceptsHTML(h.Get("accept"))
}

// acceptsHTML reports whether an Accept header lists text/html (or application/xhtml+xml) with a non-zero
// quality. */* alone does not count: fetch() and curl send it.
func acceptsHTML(accept string) bool {
	if len(accept) > 4096 {
		return false
	}
	for part := range strings.SplitSeq(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || (mt != "text/html" && mt != "application/xhtml+xml") {
			continue
		}
		if q := strings.TrimSpace(params["q"]); q == "0" || strings.Trim(q, "0.") == "" && q != "" {
			continue
		}
		return true
	}
	return false
}
