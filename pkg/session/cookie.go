package session

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// Cookie limits. Browsers keep at least 4096 bytes of a cookie (RFC 6265 §6.1), some counting the
// attributes, so a chunk's whole Set-Cookie line stays within cookieLimit. maxChunks bounds a session at a
// handful of cookies: a proxy's request-header limit (nginx: 8 KB per line by default) is the real bound.
const (
	cookieLimit     = 4096
	maxChunks       = 5
	maxCookieHeader = 64 << 10 // longer cookie headers are not read
	maxTransactions = 4        // sign-in attempts kept at once; beyond it the oldest are expired
)

// CookieOptions shape our cookies.
type CookieOptions struct {
	// Name is the base name (default cognito_authz). Without a Domain and with Secure cookies it gets the
	// __Host- prefix, so no sibling subdomain can set or shadow it.
	Name string
	// Domain, when set, shares the cookie with subdomains (and drops the __Host- prefix).
	Domain string
	// SameSite of the session cookie (default Lax). The transaction cookie is always Lax at least: the
	// callback is a cross-site navigation from the Hosted UI, which a Strict cookie would miss.
	SameSite http.SameSite
}

// cookies names and writes our cookies under one set of options.
type cookies struct {
	base     string // the session cookie's name, prefix included; chunk i>0 is base.i
	tx       string // transaction cookies are tx + an id derived from the state
	domain   string
	secure   bool
	sameSite http.SameSite
}

func newCookies(o CookieOptions, secure bool) cookies {
	name := o.Name
	if name == "" {
		name = "cognito_authz"
	}
	if o.Domain == "" && secure {
		name = "__Host-" + name
	}
	ss := o.SameSite
	if ss == 0 || ss == http.SameSiteDefaultMode {
		ss = http.SameSiteLaxMode
	}
	return cookies{base: name, tx: name + ".tx.", domain: o.Domain, secure: secure, sameSite: ss}
}

func (c cookies) chunkName(i int) string {
	if i == 0 {
		return c.base
	}
	return c.base + "." + strconv.Itoa(i)
}

// line renders one Set-Cookie value: Path=/, HttpOnly always, Secure unless insecure_http, the domain when
// configured. maxAge <= 0 deletes the cookie.
func (c cookies) line(name, value string, maxAge time.Duration, sameSite http.SameSite) string {
	hc := &http.Cookie{Name: name, Value: value, Path: "/", Domain: c.domain, HttpOnly: true, Secure: c.secure,
		SameSite: sameSite}
	if maxAge <= 0 {
		hc.MaxAge, hc.Value = -1, ""
	} else {
		hc.MaxAge = int((maxAge + time.Second - 1) / time.Second)
	}
	return hc.String()
}

// jar is the request's cookies of ours: name → values in header order (a name can repeat when a cookie
// was set for two domains).
type jar map[string][]string

// readJar parses a Cookie header leniently (a malformed foreign cookie must not cost the session) and
// keeps only the cookies whose names start with prefix.
func readJar(header, prefix string) jar {
	j := jar{}
	if len(header) > maxCookieHeader {
		return j
	}
	// ',' too: a proxy that merged two Cookie headers the generic way joined them with ", ". Cookie values
	// cannot hold a comma (RFC 6265 §4.1.1), so no cookie of ours is cut by it.
	for part := range strings.FieldsFuncSeq(header, func(r rune) bool { return r == ';' || r == ',' }) {
		name, value, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || !strings.HasPrefix(name, prefix) || len(j) > 4*maxChunks+4*maxTransactions {
			continue
		}
		j[name] = append(j[name], strings.Trim(value, `"`))
	}
	return j
}

// writeSession seals s into as few chunks as fit, and expires every other chunk the request carried, so a
// shorter session never reads a stale tail. It returns the Set-Cookie lines, or false when s does not fit
// in maxChunks cookies.
func (c cookies) writeSession(r *KeyRing, s *Session, now time.Time, have jar) ([]string, bool) {
	value := base64.RawURLEncoding.EncodeToString(r.seal(s.encode(), c.base))
	age := s.Expires.Sub(now)
	if age <= 0 {
		return c.clearSession(have), true
	}
	// Room for the value in one chunk: the longest chunk name and the attributes, measured, plus the
	// "n." count prefix of chunk 0.
	room := cookieLimit - len(c.line(c.chunkName(maxChunks-1), "", age, c.sameSite)) - 2
	var parts []string
	for len(value) > 0 {
		n := min(room, len(value))
		parts = append(parts, value[:n])
		value = value[n:]
	}
	if len(parts) > maxChunks {
		return nil, false
	}
	parts[0] = strconv.Itoa(len(parts)) + "." + parts[0]
	out := make([]string, 0, maxChunks)
	for i, p := range parts {
		out = append(out, c.line(c.chunkName(i), p, age, c.sameSite))
	}
	for i := len(parts); i < maxChunks; i++ {
		if _, stale := have[c.chunkName(i)]; stale {
			out = append(out, c.line(c.chunkName(i), "", 0, c.sameSite))
		}
	}
	return out, true
}

// clearSession expires every session chunk the request carried (always chunk 0, so a logout clears it even
// when the proxy trimmed the cookie header).
func (c cookies) clearSession(have jar) []string {
	out := []string{c.line(c.base, "", 0, c.sameSite)}
	for i := 1; i < maxChunks; i++ {
		if _, ok := have[c.chunkName(i)]; ok {
			out = append(out, c.line(c.chunkName(i), "", 0, c.sameSite))
		}
	}
	return out
}

// readSession reassembles and opens the session in the jar. Anything that does not open and parse (a
// tampered, truncated or stale cookie, another key ring's cookie) is no session.
func (c cookies) readSession(r *KeyRing, have jar, now time.Time) *Session {
	for _, first := range have[c.base] { // several: tried in turn (one may be a leftover of another domain)
		count, rest, ok := strings.Cut(first, ".")
		n, err := strconv.Atoi(count)
		if !ok || err != nil || n < 1 || n > maxChunks || len(count) != 1 {
			continue
		}
		var sb strings.Builder
		sb.WriteString(rest)
		for i := 1; i < n; i++ {
			v := have[c.chunkName(i)]
			if len(v) == 0 {
				return nil
			}
			sb.WriteString(v[0])
		}
		sealed, err := base64.RawURLEncoding.Strict().DecodeString(sb.String())
		if err != nil {
			continue
		}
		pt, ok := r.open(sealed, c.base)
		if !ok {
			continue
		}
		s, err := decodeSession(pt)
		if err != nil || !s.Valid(now) {
			continue
		}
		return s
	}
	return nil
}

// sessionKey is the key of the cache of opened sessions: the SHA-256 of the session's cookie, when the
// header holds exactly one session cookie of one chunk (the usual case, hashed in place without a copy).
// Equal keys mean byte-equal cookies, which open to the same session. ok is false otherwise: the caller
// opens the cookies without the cache.
func (c cookies) sessionKey(header string) (k [sha256.Size]byte, ok bool) {
	if len(header) > maxCookieHeader {
		return k, false
	}
	var value string
	n := 0
	for len(header) > 0 {
		var part string
		if i := indexSep(header); i >= 0 {
			part, header = header[:i], header[i+1:]
		} else {
			part, header = header, ""
		}
		name, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch {
		case name == c.base:
			value, n = v, n+1
		case strings.HasPrefix(name, c.base+".") && c.ours(name) && !strings.HasPrefix(name, c.tx):
			return k, false // a chunked session: rare, opened without the cache
		}
	}
	if n != 1 || !strings.HasPrefix(value, "1.") {
		return k, false
	}
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(value), len(value))), true
}

// indexSep is strings.IndexAny(s, ";,") with the vectorised IndexByte: a session cookie is kilobytes, and
// IndexAny tests them a byte at a time.
func indexSep(s string) int {
	i := strings.IndexByte(s, ';')
	head := s
	if i >= 0 {
		head = s[:i]
	}
	if j := strings.IndexByte(head, ','); j >= 0 {
		return j
	}
	return i
}

// ours reports whether a cookie name is one of ours: a session chunk or a transaction.
func (c cookies) ours(name string) bool {
	if name == c.base || strings.HasPrefix(name, c.tx) {
		return true
	}
	i, ok := strings.CutPrefix(name, c.base+".")
	if !ok {
		return false
	}
	n, err := strconv.Atoi(i)
	return err == nil && n > 0 && n < maxChunks && strconv.Itoa(n) == i
}

// strip returns the Cookie header without our cookies, for the upstream: it never sees the session or its
// tokens. The other cookies keep their order and text.
func (c cookies) strip(header string) string {
	if !strings.Contains(header, c.base) {
		return header
	}
	var kept []string
	for part := range strings.SplitSeq(header, ";") {
		p := strings.TrimSpace(part)
		if p == "" {
			continue
		}
		// A comma-merged header: drop our pieces, keep the rest of the part as it was.
		var pieces []string
		for piece := range strings.SplitSeq(p, ",") {
			name, _, _ := strings.Cut(strings.TrimSpace(piece), "=")
			if !c.ours(name) {
				pieces = append(pieces, piece)
			}
		}
		if rest := strings.TrimSpace(strings.Join(pieces, ",")); rest != "" {
			kept = append(kept, rest)
		}
	}
	return strings.Join(kept, "; ")
}
