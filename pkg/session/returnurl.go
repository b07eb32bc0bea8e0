package session

import (
	"net/url"
	"strconv"
	"strings"
)

// maxReturnURL bounds a return URL; longer ones are "/".
const maxReturnURL = 2048

// Hosts is the set of hosts the flow runs on (browser.allowed_hosts). An entry without a port allows the
// host on any port; one with a port allows that port only. Matching is exact after lower-casing: no
// suffixes, no trailing dots, no look-alikes.
type Hosts struct {
	names map[string]bool // host or host:port, lower case
}

// NewHosts normalises a host list.
func NewHosts(hosts []string) Hosts {
	h := Hosts{names: map[string]bool{}}
	for _, s := range hosts {
		if s = strings.ToLower(strings.TrimSpace(s)); s != "" {
			h.names[s] = true
		}
	}
	return h
}

// Canonical returns the lower-cased authority if host (a Host header or a URL's host, port optional) is
// allowed. A port must be decimal and in range; userinfo, brackets and anything not a DNS name character
// are refused.
func (h Hosts) Canonical(host string) (string, bool) {
	host = strings.ToLower(host)
	name, port, hasPort := strings.Cut(host, ":")
	if name == "" || len(host) > 255 {
		return "", false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '.' {
			return "", false
		}
	}
	if hasPort {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return "", false
		}
		if h.names[host] {
			return host, true
		}
	}
	return host, h.names[name]
}

// SafeReturn validates where to send the browser after sign-in: a same-origin path (and query and
// fragment), or an absolute https URL (http too when allowHTTP) on an allowed host. The result is
// re-serialised from the parsed parts, never the input echoed; anything else, or anything doubtful, is
// "/". Refused among others: "//evil", "/\evil", "/%09/evil", "/%2F/evil", "javascript:", userinfo,
// look-alike hosts, control characters, non-ASCII, dot segments.
func SafeReturn(raw string, hosts Hosts, allowHTTP bool) string {
	if raw == "" || len(raw) > maxReturnURL {
		return "/"
	}
	for i := 0; i < len(raw); i++ {
		// No controls, spaces, backslashes (browsers read \ as /) or non-ASCII (look-alike hosts).
		if c := raw[i]; c <= ' ' || c >= 0x7f || c == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.User != nil || strings.Contains(raw, "@") && u.Host != "" {
		return "/"
	}
	out := url.URL{}
	switch {
	case u.Scheme == "" && u.Host == "":
		if !strings.HasPrefix(raw, "/") || strings.HasPrefix(raw, "//") {
			return "/"
		}
	case u.Scheme == "https" || (allowHTTP && u.Scheme == "http"):
		host, ok := hosts.Canonical(u.Host)
		if !ok || !strings.HasPrefix(strings.ToLower(raw), u.Scheme+"://") {
			return "/"
		}
		out.Scheme, out.Host = u.Scheme, host
	default:
		return "/"
	}
	// The decoded path must be as clean as the raw one: no encoded controls, backslashes or leading "//".
	p := u.Path
	if p == "" {
		p = "/"
	}
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
		return "/"
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < ' ' || c == 0x7f || c == '\\' {
			return "/"
		}
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return "/"
		}
	}
	out.Path, out.RawPath = p, u.RawPath
	out.RawQuery = escapeQuery(u.RawQuery)
	out.Fragment = u.Fragment
	s := out.String()
	if out.Host == "" && !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") || len(s) > maxReturnURL {
		return "/"
	}
	return s
}

// escapeQuery keeps a query's text but percent-encodes every byte outside RFC 3986's query characters, and
// any % not starting a valid escape.
func escapeQuery(q string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '%' && i+2 < len(q) && isHex(q[i+1]) && isHex(q[i+2]):
			b.WriteByte(c)
		case c != '%' && queryChar(c):
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// queryChar: unreserved, sub-delims, ":", "@", "/", "?" (RFC 3986 §3.4), less "'" which some HTML
// contexts treat specially.
func queryChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("-._~!$&()*+,;=:@/?", c) >= 0
}
