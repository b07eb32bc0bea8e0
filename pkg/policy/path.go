package policy

import "strings"

// NormalizePath returns the form of a request path that rules are matched against. It is pure and never
// fails: every input has exactly one normal form.
//
//   - The query string and fragment are dropped: rules match the path only.
//   - A path that does not start with "/" (an asterisk-form "*", a relative X-Original-URI) gets one.
//   - Percent-escapes of unreserved characters (ALPHA DIGIT - . _ ~) are decoded and every other escape is
//     kept with upper-case hex: this is RFC 3986 §6.2.2 normalisation, which every server applies the same
//     way, so "/%61dmin" is "/admin" and "/%2e%2e/" is a dot segment. Reserved escapes are NOT decoded:
//     "%2F" stays "%2F", so "/admin%2Fx" is the one segment "admin%2Fx" and does not match prefix "/admin/".
//     Whether an upstream decodes %2F is the upstream's business; a rule never sees a slash that is not one.
//   - Empty segments are merged ("//" → "/"), and "." and ".." segments are removed as RFC 3986 §5.2.4
//     does, never climbing above the root: "/public/../admin" is "/admin", and so matches /admin rules and
//     never /public ones.
//   - A "%" that starts no valid escape ("%zz", a trailing "%") is written "%25", the escape of a literal
//     percent sign. Kept bare, it could join with a decoded character into a new escape ("%7%41" would
//     become "%7A"), and the normal form would not be normal.
//
// https://www.rfc-editor.org/rfc/rfc3986#section-6.2.2
func NormalizePath(raw string) string {
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i]
	}
	if isNormal(raw) {
		return raw // the common case: no allocation
	}
	segs := make([]string, 0, 8)
	trailing := false // the normal form ends in "/" (a directory, or a removed dot segment at the end)
	for seg := range strings.SplitSeq(raw, "/") {
		seg = unescapeUnreserved(seg)
		switch seg {
		case "":
			trailing = true
			continue
		case ".":
			trailing = true
			continue
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
			trailing = true
			continue
		}
		segs = append(segs, seg)
		trailing = false
	}
	if len(segs) == 0 {
		return "/"
	}
	var b strings.Builder
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(s)
	}
	if trailing {
		b.WriteByte('/')
	}
	return b.String()
}

// isNormal reports whether p is already in normal form: it starts with "/", has no empty, "." or ".."
// segment (but may end in "/"), and no percent sign at all.
func isNormal(p string) bool {
	if p == "" || p[0] != '/' || strings.IndexByte(p, '%') >= 0 {
		return false
	}
	start := 1
	for i := 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		seg := p[start:i]
		if seg == "." || seg == ".." || (seg == "" && i < len(p)) {
			return false
		}
		start = i + 1
	}
	return true
}

// unescapeUnreserved decodes %XX escapes of unreserved characters, upper-cases the hex of all others, and
// escapes a bare "%".
func unescapeUnreserved(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+2 < len(s) {
			hi, lo := unhex(s[i+1]), unhex(s[i+2])
			if hi >= 0 && lo >= 0 {
				if d := byte(hi<<4 | lo); unreserved(d) {
					b.WriteByte(d)
				} else {
					b.WriteByte('%')
					b.WriteByte(upperHex[hi])
					b.WriteByte(upperHex[lo])
				}
				i += 2
				continue
			}
		}
		if c == '%' {
			b.WriteString("%25")
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

const upperHex = "0123456789ABCDEF"

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// unreserved is RFC 3986 §2.3.
func unreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}
