package extauthz

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/tracing"
)

// HTTPOptions configure the HTTP ext_authz handler.
type HTTPOptions struct {
	// PathPrefix is stripped from the request path: Envoy's http_service path_prefix (Istio
	// envoyExtAuthzHttp pathPrefix) is put in front of the original path.
	PathPrefix string
	// Forwarded is the one family of headers the original method, URI and host are read from: forward-auth
	// proxies (nginx auth_request, Traefik ForwardAuth, Caddy forward_auth) call the service with a request
	// of their own and pass the original in headers. ForwardedNone (the default, for Envoy, which sends the
	// original request itself and may pass such headers through from the client) reads none of them.
	Forwarded Forwarded
	// TrustForwarded is the old http_trust_forwarded: with Forwarded unset it means ForwardedAny.
	TrustForwarded bool
}

// Forwarded names a family of forwarded-request headers, and so the proxy that sets them.
type Forwarded uint8

// The families. A proxy sets its own family's headers and passes the client's other headers through, so a
// request carrying the other family's (or a repeated trusted header) is refused: it was not the proxy's.
const (
	// ForwardedNone reads the check request itself (Envoy, Istio).
	ForwardedNone Forwarded = iota
	// ForwardedNginx reads X-Original-URI and X-Original-Method, and the Host header, as the nginx
	// auth_request recipe sets them.
	ForwardedNginx
	// ForwardedTraefik reads X-Forwarded-Uri, X-Forwarded-Method and X-Forwarded-Host (Traefik ForwardAuth).
	ForwardedTraefik
	// ForwardedCaddy reads X-Forwarded-Uri and X-Forwarded-Method, and X-Forwarded-Host or else Host
	// (Caddy forward_auth).
	ForwardedCaddy
	// ForwardedAny is the deprecated http_trust_forwarded: true: whichever one family is present; both
	// present is refused, neither reads the check request itself.
	ForwardedAny
)

var forwardedNames = [...]string{"none", "nginx", "traefik", "caddy", "any"}

// String returns the config spelling.
func (f Forwarded) String() string {
	if int(f) < len(forwardedNames) {
		return forwardedNames[f]
	}
	return fmt.Sprintf("forwarded(%d)", f)
}

// ParseForwarded reads server.http_forwarded: none (or empty), nginx, traefik or caddy.
func ParseForwarded(s string) (Forwarded, error) {
	switch s {
	case "", "none":
		return ForwardedNone, nil
	case "nginx":
		return ForwardedNginx, nil
	case "traefik":
		return ForwardedTraefik, nil
	case "caddy":
		return ForwardedCaddy, nil
	}
	return 0, fmt.Errorf("http_forwarded %q: want none, nginx, traefik or caddy", s)
}

// headerFamily is the header names of one family; host "" reads the Host header.
type headerFamily struct{ uri, method, host string }

var (
	originalHeaders  = headerFamily{uri: "X-Original-Uri", method: "X-Original-Method"}
	forwardedHeaders = headerFamily{uri: "X-Forwarded-Uri", method: "X-Forwarded-Method", host: "X-Forwarded-Host"}
)

func (f headerFamily) present(h http.Header) bool {
	return len(h.Values(f.uri)) > 0 || len(h.Values(f.method)) > 0
}

var errForwarded = errors.New("forwarded headers")

// HTTPHandler is the HTTP ext_authz protocol: Envoy's http_service mode, Istio's envoyExtAuthzHttp, nginx
// auth_request and Traefik ForwardAuth. It answers 200 with the identity headers on allow, and the deny's
// status, headers and JSON body otherwise. It never reads the request body.
type HTTPHandler struct {
	checker Checker
	opts    HTTPOptions
}

// NewHTTPHandler serves c's decisions (see NewServer).
func NewHTTPHandler(c Checker, opts HTTPOptions) *HTTPHandler {
	return &HTTPHandler{checker: c, opts: opts}
}

// HeadersToRemove is the response header in which Envoy's HTTP ext_authz client reads the request headers
// to remove on allow (the HTTP form of OkHttpResponse.headers_to_remove).
const HeadersToRemove = "x-envoy-auth-headers-to-remove"

// ServeHTTP decides the request it describes.
func (h *HTTPHandler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r := h.Request(req)
	ctx := req.Context()
	var span trace.Span // nil while tracing is off
	if tracing.Enabled() {
		ctx, span = tracing.StartCheck(ctx, "ext_authz.Check", propagation.HeaderCarrier(req.Header))
	}
	d := h.checker.Check(ctx, &r)
	if span != nil {
		endCheck(span, "http", &d)
	}
	if d.Allowed() {
		upstreamCookie(w, req, &d)
	}
	WriteHTTP(w, &d)
}

// upstreamCookie answers an allow of a request with cookies with the Cookie header the upstream may see
// (the request's, without the session's and token sources' cookies; empty when none is left), whenever
// the decision does not set one itself. Forward-auth proxies copy a listed answer header onto the upstream
// request (Caddy copy_headers or request_header, Traefik authResponseHeaders); with Cookie among them, our
// cookies never reach the upstream, and a Caddy that writes a missing header's placeholder literally
// (2.6) always has one to copy. Envoy reads x-envoy-auth-headers-to-remove instead.
func upstreamCookie(w http.ResponseWriter, req *http.Request, d *authz.Decision) {
	if len(req.Header.Values("Cookie")) == 0 {
		return
	}
	for _, h := range d.Headers {
		if strings.EqualFold(h.Name, "cookie") {
			return
		}
	}
	v := joinedHeaders(req.Header).Get("cookie")
	for _, r := range d.Remove {
		if r == "cookie" {
			v = ""
		}
	}
	w.Header().Set("Cookie", v)
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
	r := authz.Request{
		Method:    method,
		Host:      host,
		Path:      path,
		Headers:   joinedHeaders(req.Header),
		RequestID: req.Header.Get("X-Request-Id"),
	}
	fam := h.opts.Forwarded
	if fam == ForwardedNone && h.opts.TrustForwarded {
		fam = ForwardedAny
	}
	if fam != ForwardedNone {
		// Fail closed: never judge a path the proxy did not send.
		r.Invalid = readForwarded(&r, req.Header, fam)
	}
	return r
}

// readForwarded sets r's method, path and host from the forwarded headers of family fam. It refuses the
// other family's method or URI header (the client sent it: the proxy sets only its own), a trusted header
// sent twice, a missing method or URI (the proxy always sets both), and values that are no method or URI.
func readForwarded(r *authz.Request, h http.Header, fam Forwarded) error {
	var trusted headerFamily
	legacy := fam == ForwardedAny
	switch fam {
	case ForwardedNginx:
		if forwardedHeaders.present(h) {
			return fmt.Errorf("%w: X-Forwarded-Uri or X-Forwarded-Method behind nginx", errForwarded)
		}
		trusted = originalHeaders
	case ForwardedTraefik, ForwardedCaddy:
		if originalHeaders.present(h) {
			return fmt.Errorf("%w: X-Original-URI or X-Original-Method behind %s", errForwarded, fam)
		}
		trusted = forwardedHeaders
	case ForwardedAny:
		o, f := originalHeaders.present(h), forwardedHeaders.present(h)
		switch {
		case o && f:
			return fmt.Errorf("%w: both X-Original-* and X-Forwarded-*", errForwarded)
		case o:
			trusted = originalHeaders
		case f:
			trusted = forwardedHeaders
		default:
			return nil // the old setting read the check request when no header was sent
		}
	default:
		return fmt.Errorf("%w: unknown family %d", errForwarded, fam)
	}
	uri, err := single(h, trusted.uri, !legacy)
	if err != nil {
		return err
	}
	method, err := single(h, trusted.method, !legacy)
	if err != nil {
		return err
	}
	if uri != "" {
		p, ok := originForm(uri)
		if !ok {
			return fmt.Errorf("%w: %s is not a request target", errForwarded, trusted.uri)
		}
		r.Path = p
	}
	if method != "" {
		if !isToken(method) {
			return fmt.Errorf("%w: %s is not a method", errForwarded, trusted.method)
		}
		r.Method = method
	}
	if trusted.host != "" {
		host, err := single(h, trusted.host, false)
		if err != nil {
			return err
		}
		if legacy {
			host, _, _ = strings.Cut(host, ",") // the old setting took the first proxy's view of the host
			host = strings.TrimSpace(host)
		} else if strings.ContainsAny(host, ", ") {
			return fmt.Errorf("%w: %s holds a list", errForwarded, trusted.host)
		}
		if host != "" {
			r.Host = host
		}
	}
	return nil
}

// single returns the one value of header name: an error if it is sent twice, or missing when required.
func single(h http.Header, name string, required bool) (string, error) {
	switch vs := h.Values(name); len(vs) {
	case 0:
		if required {
			return "", fmt.Errorf("%w: %s missing", errForwarded, name)
		}
		return "", nil
	case 1:
		if vs[0] == "" && required {
			return "", fmt.Errorf("%w: %s empty", errForwarded, name)
		}
		return vs[0], nil
	}
	return "", fmt.Errorf("%w: %s sent more than once", errForwarded, name)
}

// originForm returns the path and query of a forwarded request target: an origin-form one as it is, an
// absolute-form one ("http://host/admin", which nginx's $request_uri holds when the client sent it so)
// without scheme and authority, "*" as it is. Anything else is refused: read with a "/" in front, it would
// be judged as a path the upstream never serves.
func originForm(uri string) (string, bool) {
	switch {
	case strings.HasPrefix(uri, "/"), uri == "*":
		return uri, true
	}
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok || scheme == "" || !isToken(scheme) {
		return "", false
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		if rest[i] != '/' {
			return "/" + rest[i:], true
		}
		return rest[i:], true
	}
	return "/", true
}

// isToken reports whether s is an RFC 9110 token (a method name, a URI scheme).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// joinedHeaders reads headers as Envoy's CheckRequest presents them: a repeated header is one value, joined
// with commas (cookies with "; "), so two Authorization headers are one malformed credential here too.
type joinedHeaders http.Header

// UnderscoredNames implements authz.HeaderLister.
func (h joinedHeaders) UnderscoredNames() []string {
	var out []string
	for name := range h {
		if strings.IndexByte(name, '_') >= 0 {
			out = append(out, name)
		}
	}
	return out
}

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
		if strings.EqualFold(h.Name, "set-cookie") {
			hs.Add(h.Name, h.Value) // every one: a browser needs them all
			continue
		}
		hs.Set(h.Name, h.Value)
	}
	if d.Allowed() {
		for _, h := range d.ResponseHeaders { // Set-Cookie of a refreshed session, on the 200
			hs.Add(h.Name, h.Value)
		}
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
	w.WriteHeader(d.HTTPStatus())
	w.Write([]byte(d.Body)) // the client went away or not: nothing else to do
}
