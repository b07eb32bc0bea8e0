package extauthz

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
)

// HTTPOptions configure the HTTP ext_authz handler.
type HTTPOptions struct {
	// PathPrefix is stripped from the request path: Envoy's http_service path_prefix (Istio
	// envoyExtAuthzHttp pathPrefix) is put in front of the original path.
	PathPrefix string
	// TrustForwarded takes the original method, URI and host from X-Forwarded-Method (or X-Original-Method),
	// X-Forwarded-Uri (or X-Original-URI) and X-Forwarded-Host. Traefik ForwardAuth and nginx auth_request
	// call the service with a request of their own and pass the original in these headers. Envoy passes the
	// original request itself, and may forward these headers from the client: trusting them there would let a
	// client choose the path its request is judged by (X-Forwarded-Uri: /healthz). So it is off by default,
	// and only for a proxy that always sets all of them itself.
	TrustForwarded bool
}

// HTTPHandler is the HTTP ext_authz protocol: Envoy's http_service mode, Istio's envoyExtAuthzHttp, nginx
// auth_request and Traefik ForwardAuth. It answers 200 with the identity headers on allow, and the deny's
// status, headers and JSON body otherwise. It never reads the request body.
type HTTPHandler struct {
	checker func() Checker
	opts    HTTPOptions
}

// NewHTTPHandler serves the decisions of the Checker current returns at the time of each request.
func NewHTTPHandler(current func() Checker, opts HTTPOptions) *HTTPHandler {
	return &HTTPHandler{checker: current, opts: opts}
}

// HeadersToRemove is the response header in which Envoy's HTTP ext_authz client reads the request headers
// to remove on allow (the HTTP form of OkHttpResponse.headers_to_remove).
const HeadersToRemove = "x-envoy-auth-headers-to-remove"

// ServeHTTP decides the request it describes.
func (h *HTTPHandler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r := h.Request(req)
	d := h.checker().Check(req.Context(), &r)
	WriteHTTP(w, &d)
}

// Request translates an HTTP ext_authz request into an authz.Request.
func (h *HTTPHandler) Request(req *http.Request) authz.Request {
	method, host := req.Method, req.Host
	path := req.RequestURI // raw and undecoded, with the query, as Envoy's CheckRequest carries it
	if !strings.HasPrefix(path, "/") {
		path = req.URL.EscapedPath() // absolute-form or asterisk-form request target
		if req.URL.RawQuery != "" {
			path += "?" + req.URL.RawQuery
		}
	}
	if p := h.opts.PathPrefix; p != "" && strings.HasPrefix(path, p) {
		if rest := path[len(p):]; rest == "" || rest[0] == '?' {
			path = "/" + rest
		} else if rest[0] == '/' {
			path = rest
		}
	}
	if h.opts.TrustForwarded {
		if v := firstOf(req.Header, "X-Forwarded-Method", "X-Original-Method"); v != "" {
			method = v
		}
		if v := firstOf(req.Header, "X-Forwarded-Uri", "X-Original-Uri"); v != "" {
			path = v
		}
		if v := firstOf(req.Header, "X-Forwarded-Host"); v != "" {
			host, _, _ = strings.Cut(v, ",") // the first proxy's view of the host
			host = strings.TrimSpace(host)
		}
	}
	return authz.Request{
		Method:    method,
		Host:      host,
		Path:      path,
		Headers:   joinedHeaders(req.Header),
		RequestID: req.Header.Get("X-Request-Id"),
	}
}

func firstOf(h http.Header, names ...string) string {
	for _, n := range names {
		if v := h.Get(n); v != "" {
			return v
		}
	}
	return ""
}

// joinedHeaders reads headers as Envoy's CheckRequest presents them: a repeated header is one value, joined
// with commas (cookies with "; "), so two Authorization headers are one malformed credential here too.
type joinedHeaders http.Header

// Get returns every value of the header, joined.
func (h joinedHeaders) Get(name string) string {
	vs := http.Header(h).Values(name)
	switch len(vs) {
	case 0:
		return ""
	case 1:
		return vs[0]
	}
	sep := ","
	if strings.EqualFold(name, "cookie") {
		sep = "; "
	}
	return strings.Join(vs, sep)
}

// WriteHTTP writes a decision as the HTTP ext_authz protocol expects it. On allow: 200, and EVERY identity
// header: with its value, or empty when the identity has none (Decision.Unset; all of them on an anonymous
// allow). Forward-auth proxies copy the headers they are told to name from this answer onto the upstream
// request, and none of them removes the client's copy reliably when the answer lacks one (Caddy 2.6 writes
// a literal placeholder, later Caddys pass the client's value on), so an answer that always carries every
// name is what makes them overwrite it. The headers to remove are also listed in
// x-envoy-auth-headers-to-remove, which Envoy applies (its allowed_upstream_headers must name every identity
// header). On deny: the status, headers and JSON body the client receives.
func WriteHTTP(w http.ResponseWriter, d *authz.Decision) {
	hs := w.Header()
	for _, h := range d.Headers {
		hs.Set(h.Name, h.Value)
	}
	if d.Allowed() {
		for _, n := range d.Unset {
			hs.Set(n, "")
		}
		if len(d.Remove) > 0 {
			hs.Set(HeadersToRemove, strings.Join(d.Remove, ","))
		}
		if d.DryRun { // the would-be deny, for the client (list it in Envoy's allowed_client_headers_on_success)
			hs.Set(authz.DryRunHeader, string(d.Reason))
		}
		hs.Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return
	}
	hs.Set("Content-Length", strconv.Itoa(len(d.Body)))
	w.WriteHeader(d.Outcome.HTTPStatus())
	w.Write([]byte(d.Body)) // the client went away or not: nothing else to do
}
