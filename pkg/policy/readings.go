package policy

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Reading is one way an upstream reads a request path: the path it will serve, in normal form.
//
// Upstreams disagree about what a path means, and a rule judged on one reading while the upstream serves
// another can be walked around. So a request is matched under every reading a real upstream uses, and is
// judged by every rule those readings select (see Policy.Select).
type Reading struct {
	// Path is in normal form (NormalizePath(Path) == Path), except for the raw reading, which is the path
	// as received without query and fragment.
	Path string
	// Folded readings are case-folded and matched against case-folded rule paths (and path_regex
	// case-insensitively).
	Folded bool
	// Name says which upstreams read it so, for tests and explanations: "normal", "raw", "params",
	// "decoded", "decoded-params", "params-decoded", "folded-…".
	Name string
}

// maxDecodeRounds bounds how often a path is percent-decoded: "%25252F" is "/" to a chain of three
// decoders. A fourth level is not read as a slash by anything that matters here, and it stays escaped.
const maxDecodeRounds = 3

// Readings returns the distinct readings of a request path (query and fragment are never part of one):
//
//   - normal: RFC 3986 normal form (NormalizePath): Go net/http, Envoy with normalize_path, nginx and
//     Tomcat for paths without ";", "%2F" or "\".
//   - raw: the bytes as received, dot segments not resolved: Express and other routers that match the raw
//     path ("/admin/../public" is routed under "/admin" by app.use("/admin"); "//admin" is not).
//   - params: ";…" cut from every segment before dot segments are resolved, as Tomcat and Spring MVC do:
//     "/public/..;/admin" is "/admin", "/admin;x=1/users" is "/admin/users".
//   - decoded: every escape decoded (once, twice, three times while anything is left to decode), "%2F",
//     "%5C" and "\" read as "/", then dot segments resolved: nginx, Caddy, IIS, and a decoding proxy in
//     front of any of them ("/public/..%2Fadmin" is "/admin", "%252F" is "/" after two rounds).
//   - decoded-unix (and -params): decoded with "\" kept as a byte, as nginx and Caddy on Unix read it.
//   - decoded-params, params-decoded: the decoded readings with ";…" cut after and before decoding ("%3B"
//     is ";" to a proxy that decodes in front of Tomcat; Tomcat with encoded slashes allowed cuts first).
//   - folded-…: each of the above case-folded (Unicode simple folding, so "ſ" is "s" and the Kelvin sign
//     "K" is "k"); folded-trimmed-…: that, with trailing dots and spaces cut from each segment as Windows
//     does: Express (case
//     insensitive by default), Caddy's path matchers, ASP.NET and IIS.
//
// The first reading is always the normal one. The result never holds two readings with the same Path and
// Folded.
func Readings(raw string) []Reading {
	raw = cutQuery(raw)
	n := NormalizePath(raw)
	out := []Reading{{Path: n, Name: "normal"}}
	add := func(name, p string) {
		for _, r := range out {
			if !r.Folded && r.Path == p {
				return
			}
		}
		out = append(out, Reading{Path: p, Name: name})
	}
	rawPath := raw
	if !strings.HasPrefix(rawPath, "/") {
		rawPath = "/" + rawPath
	}
	add("raw", rawPath)
	hasParams := strings.IndexByte(raw, ';') >= 0
	if hasParams {
		add("params", NormalizePath(stripParams(raw)))
	}
	if strings.ContainsAny(raw, `%\`) {
		dec, before := raw, stripParams(raw)
		for round := 1; round <= maxDecodeRounds; round++ {
			nextDec, nextBefore := decodeAll(dec), decodeAll(before)
			if round > 1 && nextDec == dec && nextBefore == before {
				break // nothing left to decode
			}
			dec, before = nextDec, nextBefore
			d := slashes(dec)
			add("decoded", NormalizePath(escapePath(d)))
			if hasParams || strings.IndexByte(d, ';') >= 0 {
				add("decoded-params", NormalizePath(escapePath(stripParams(d))))
				add("params-decoded", NormalizePath(escapePath(slashes(before))))
			}
			// nginx and Caddy on Unix decode "%2F" but keep "\" as a byte of its segment: "/0\0/..%2Fadmin"
			// is "/admin" to them, and "/0/admin" once "\" is a slash too.
			if strings.IndexByte(dec, '\\') >= 0 {
				add("decoded-unix", NormalizePath(escapePath(dec)))
				if hasParams || strings.IndexByte(dec, ';') >= 0 {
					add("decoded-unix-params", NormalizePath(escapePath(stripParams(dec))))
				}
			}
		}
	}
	unfolded := len(out)
	addFolded := func(name, p string) {
		if !slices.ContainsFunc(out[unfolded:], func(o Reading) bool { return o.Path == p }) {
			out = append(out, Reading{Path: p, Folded: true, Name: name})
		}
	}
	for i := range unfolded {
		r := out[i]
		p := foldPath(r.Path)
		if p != r.Path || foldable(p) {
			addFolded("folded-"+r.Name, p) // case-insensitive routers (Express, Caddy): case only
		}
		if r.Name == "raw" {
			continue
		}
		// Windows (IIS) also cuts trailing dots and spaces. Both folded readings are kept: "/ADMIN/..." is
		// /admin/... to Express and something else once trimmed.
		if t := NormalizePath(trimWindows(p)); t != p {
			addFolded("folded-trimmed-"+r.Name, t)
		}
	}
	return out
}

// foldable reports whether p has anything case folding could change: an ASCII letter, a non-ASCII byte or
// an escape (which may spell one).
func foldable(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c|0x20 >= 'a' && c|0x20 <= 'z' || c >= 0x80 || c == '%' {
			return true
		}
	}
	return false
}

// plainPath reports whether raw needs no reading but the normal one (and, for a policy whose rules tell
// case apart, the folded one): it is in normal form, with no ";", "\" or "%", no upper-case letter, no
// non-ASCII or control byte, and no segment ending in a dot.
func plainPath(raw string) bool {
	if !isNormal(raw) {
		return false
	}
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c >= 'A' && c <= 'Z', c == ';', c == '\\', c >= 0x80, c < 0x21, c == 0x7f:
			return false
		case c == '.' && (i+1 == len(raw) || raw[i+1] == '/'):
			return false // "a." is "a" to Windows
		}
	}
	return true
}

// cutQuery drops the query string and the fragment.
func cutQuery(raw string) string {
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		return raw[:i]
	}
	return raw
}

// stripParams cuts every segment at its first ";", as Tomcat does before it resolves dot segments
// (Servlet spec §3.5; Tomcat's CoyoteAdapter.parsePathParameters).
func stripParams(p string) string {
	if strings.IndexByte(p, ';') < 0 {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i, seg := range strings.Split(p, "/") {
		if i > 0 {
			b.WriteByte('/')
		}
		seg, _, _ = strings.Cut(seg, ";")
		b.WriteString(seg)
	}
	return b.String()
}

// decodeAll decodes every valid %XX escape once; a "%" that starts no valid escape stays as it is.
func decodeAll(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if hi, lo := unhex(s[i+1]), unhex(s[i+2]); hi >= 0 && lo >= 0 {
				b.WriteByte(byte(hi<<4 | lo))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// slashes reads "\" as "/", as IIS does (and nginx and Caddy on Windows).
func slashes(s string) string { return strings.ReplaceAll(s, `\`, "/") }

// escapePath writes decoded bytes back in the alphabet NormalizePath keeps: unreserved characters,
// sub-delims, ":", "@" and "/" as they are, everything else (a literal "%", "?", "#", spaces, controls,
// non-ASCII bytes) as an upper-case escape. The result is a path NormalizePath reads byte for byte as the
// decoded one.
func escapePath(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) || pathChar(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&15])
	}
	return b.String()
}

// pathChar is a character RFC 3986 §3.3 allows unescaped in a path besides the unreserved ones.
func pathChar(c byte) bool {
	return strings.IndexByte("!$&'()*+,;=:@/", c) >= 0
}

// foldRune maps a rune onto one member of its case class: the lower case of its upper case, so that "ſ"
// (whose upper case is "S") is "s", "K" (Kelvin) is "k" and "İ" is "i", as case-insensitive upstreams
// that compare upper-cased names (Windows) or lower-cased ones (Caddy, Express) would have it.
func foldRune(r rune) rune { return unicode.ToLower(unicode.ToUpper(r)) }

// foldPath case-folds a path in normal form: ASCII letters outside escapes, and the characters that runs of
// escapes spell when they are valid UTF-8. Escape hex stays upper case, so the result is in normal form
// too (a fold that yields an ASCII letter writes it as a letter).
func foldPath(p string) string {
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); {
		c := p[i]
		if c != '%' {
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c < 0x80 {
				b.WriteByte(c)
				i++
				continue
			}
			// A raw non-ASCII byte (only in the raw reading): fold the rune it starts, if any.
			r, size := utf8.DecodeRuneInString(p[i:])
			if r == utf8.RuneError {
				b.WriteByte(c)
				i++
				continue
			}
			b.WriteRune(foldRune(r))
			i += size
			continue
		}
		// A run of escapes: decode it, fold what it spells, and write it back escaped.
		j := i
		var run []byte
		for j+2 < len(p) && p[j] == '%' && unhex(p[j+1]) >= 0 && unhex(p[j+2]) >= 0 {
			run = append(run, byte(unhex(p[j+1])<<4|unhex(p[j+2])))
			j += 3
		}
		if j == i { // a bare "%" (only in the raw reading)
			b.WriteByte('%')
			i++
			continue
		}
		for len(run) > 0 {
			r, size := utf8.DecodeRune(run)
			if r == utf8.RuneError && size <= 1 {
				writeEscaped(&b, run[:1])
				run = run[1:]
				continue
			}
			f := foldRune(r)
			var enc [utf8.UTFMax]byte
			n := utf8.EncodeRune(enc[:], f)
			if f < 0x80 && unreserved(byte(f)) {
				b.WriteByte(byte(f))
			} else {
				writeEscaped(&b, enc[:n])
			}
			run = run[size:]
		}
		i = j
	}
	return b.String()
}

func writeEscaped(b *strings.Builder, bs []byte) {
	for _, c := range bs {
		b.WriteByte('%')
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&15])
	}
}

// trimWindows cuts trailing dots and spaces ("%20") from every segment that is not a dot segment, as
// Windows does with file names (IIS serves "/admin./x" and "/admin%20/x" as "/admin/x"). A segment that
// is nothing but dots and spaces becomes empty, except "." and "..", which stay dot segments; "..%20" is
// "..", a dot segment to Windows.
func trimWindows(p string) string {
	if !strings.Contains(p, ".") && !strings.Contains(p, "%20") {
		return p
	}
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		if seg == "." || seg == ".." {
			continue
		}
		for seg != "." && seg != ".." {
			if t, ok := strings.CutSuffix(seg, "%20"); ok {
				seg = t
			} else if t, ok := strings.CutSuffix(seg, "."); ok {
				seg = t
			} else {
				break
			}
		}
		segs[i] = seg
	}
	return strings.Join(segs, "/")
}
