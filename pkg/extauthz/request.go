package extauthz

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
)

// checkRequest is what a Check reads of Envoy's CheckRequest: the HTTP request's method, host, path, id and
// headers, and the route's context extensions. Server decodes it straight from the wire (decodeCheckRequest)
// instead of building the whole CheckRequest: Envoy also sends the peers' addresses, labels and
// certificates, the TLS session, metadata and perhaps the body, and decoding all that into messages and
// maps cost 9 µs and 81 allocations per Check for nothing the decision reads. Decoded this way, it is one
// copy of the message and one slice of headers, whatever else Envoy sends.
//
// Every string is a substring of that one copy, which is never written after decoding.
type checkRequest struct {
	method, host, path, id string
	headers                []headerField // the headers map's entries, in wire order
	raw                    rawHeaders    // header_map (encode_raw_headers), in wire order
	ext                    map[string]string
}

// headerField is one entry of a protobuf map<string,string>.
type headerField struct{ key, value string }

// rawHeader is one of header_map's HeaderValues.
type rawHeader struct{ key, value, raw string }

// Field numbers of what a Check reads (envoy/service/auth/v3/attribute_context.proto, external_auth.proto,
// envoy/config/core/v3/base.proto).
const (
	fieldCheckAttributes   protowire.Number = 1  // CheckRequest.attributes
	fieldAttrsRequest      protowire.Number = 4  // AttributeContext.request
	fieldAttrsExtensions   protowire.Number = 10 // AttributeContext.context_extensions
	fieldRequestHTTP       protowire.Number = 2  // AttributeContext.Request.http
	fieldHTTPID            protowire.Number = 1  // HttpRequest.id
	fieldHTTPMethod        protowire.Number = 2  // HttpRequest.method
	fieldHTTPHeaders       protowire.Number = 3  // HttpRequest.headers
	fieldHTTPPath          protowire.Number = 4  // HttpRequest.path
	fieldHTTPHost          protowire.Number = 5  // HttpRequest.host
	fieldHTTPHeaderMap     protowire.Number = 13 // HttpRequest.header_map
	fieldHeaderMapHeaders  protowire.Number = 1  // HeaderMap.headers
	fieldHeaderValueKey    protowire.Number = 1  // HeaderValue.key, and a map entry's key
	fieldHeaderValueValue  protowire.Number = 2  // HeaderValue.value, and a map entry's value
	fieldHeaderValueRawVal protowire.Number = 3  // HeaderValue.raw_value
)

// errMalformed is a CheckRequest that is not well-formed protobuf.
var errMalformed = errors.New("malformed CheckRequest")

// decodeCheckRequest decodes data into r as protobuf decoding would fill the fields it reads: a message
// field that occurs more than once is merged, a scalar's last occurrence wins, a map's last entry for a key
// wins, repeated fields append, and a field of another wire type than its own is an unknown field. Fields
// it does not read are checked for well-formed framing and skipped. Strings are not checked for UTF-8 (a
// proto3 decoder refuses the whole message for one bad byte in any string field, and Envoy passes header
// values as they came, so a client could turn its Check into an error, which failure_mode_allow lets
// through): the decision reads bytes.
func decodeCheckRequest(data mem.BufferSlice, r *checkRequest) error {
	b := data.Materialize() // this request's own copy: never written after this
	d := decoder{b: b, s: unsafe.String(unsafe.SliceData(b), len(b))}
	f := d.fields(0, len(b))
	for f.next() {
		if f.num == fieldCheckAttributes {
			f.check(d.attributes(r, f.start, f.end))
		}
	}
	return f.err
}

// decoder holds one message's bytes; s is the same bytes as a string, for substrings that cost nothing.
type decoder struct {
	b []byte
	s string
}

// fields walks the fields of one message, b[i:end].
type fields struct {
	d      decoder
	i, max int
	// The current field, always length-delimited (the only wire type read here): its number and contents
	// b[start:end].
	num        protowire.Number
	start, end int
	err        error
}

func (d decoder) fields(i, end int) fields { return fields{d: d, i: i, max: end} }

// next moves to the next length-delimited field, reporting false at the message's end or at the first
// malformed field (err). A field of any other wire type is checked for well-formed framing and skipped (a
// field read here that arrives with another wire type is an unknown field to protobuf too).
func (f *fields) next() bool {
	for f.err == nil && f.i < f.max {
		b := f.d.b[f.i:f.max]
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			f.err = fmt.Errorf("%w: %w", errMalformed, protowire.ParseError(n))
			return false
		}
		if typ != protowire.BytesType {
			m := protowire.ConsumeFieldValue(num, typ, b[n:])
			if m < 0 {
				f.err = fmt.Errorf("%w: field %d: %w", errMalformed, num, protowire.ParseError(m))
				return false
			}
			f.i += n + m
			continue
		}
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			f.err = fmt.Errorf("%w: field %d: %w", errMalformed, num, protowire.ParseError(m))
			return false
		}
		f.num, f.end = num, f.i+n+m
		f.start, f.i = f.end-len(v), f.end
		return true
	}
	return false
}

// check stops the walk at a nested message's error.
func (f *fields) check(err error) {
	if err != nil && f.err == nil {
		f.err = err
	}
}

// str is the current field's contents.
func (f *fields) str() string { return f.d.s[f.start:f.end] }

// attributes decodes an AttributeContext, b[i:end].
func (d decoder) attributes(r *checkRequest, i, end int) error {
	f := d.fields(i, end)
	for f.next() {
		switch f.num {
		case fieldAttrsRequest:
			f.check(d.request(r, f.start, f.end))
		case fieldAttrsExtensions:
			k, v, _, err := d.headerValue(f.start, f.end) // a map entry's key and value are HeaderValue's field numbers
			if r.ext == nil {
				r.ext = make(map[string]string)
			}
			r.ext[k] = v
			f.check(err)
		}
	}
	return f.err
}

// request decodes an AttributeContext.Request, b[i:end].
func (d decoder) request(r *checkRequest, i, end int) error {
	f := d.fields(i, end)
	for f.next() {
		if f.num == fieldRequestHTTP {
			f.check(d.http(r, f.start, f.end))
		}
	}
	return f.err
}

// http decodes an AttributeContext.HttpRequest, b[i:end].
func (d decoder) http(r *checkRequest, i, end int) error {
	f := d.fields(i, end)
	for f.next() {
		switch f.num {
		case fieldHTTPID:
			r.id = f.str()
		case fieldHTTPMethod:
			r.method = f.str()
		case fieldHTTPPath:
			r.path = f.str()
		case fieldHTTPHost:
			r.host = f.str()
		case fieldHTTPHeaders:
			if r.headers == nil {
				r.headers = make([]headerField, 0, 16) // a browser's or an API client's headers, in one allocation
			}
			k, v, _, err := d.headerValue(f.start, f.end) // a map entry's key and value are HeaderValue's field numbers
			r.headers = append(r.headers, headerField{k, v})
			f.check(err)
		case fieldHTTPHeaderMap:
			f.check(d.headerMap(r, f.start, f.end))
		}
	}
	return f.err
}

// headerMap decodes a HeaderMap, b[i:end].
func (d decoder) headerMap(r *checkRequest, i, end int) error {
	f := d.fields(i, end)
	for f.next() {
		if f.num == fieldHeaderMapHeaders {
			var h rawHeader
			var err error
			h.key, h.value, h.raw, err = d.headerValue(f.start, f.end)
			r.raw = append(r.raw, h)
			f.check(err)
		}
	}
	return f.err
}

// headerValue decodes a HeaderValue, or a map<string,string> entry (its key and value; a missing one is ""),
// b[i:end].
func (d decoder) headerValue(i, end int) (key, value, raw string, err error) {
	f := d.fields(i, end)
	for f.next() {
		switch f.num {
		case fieldHeaderValueKey:
			key = f.str()
		case fieldHeaderValueValue:
			value = f.str()
		case fieldHeaderValueRawVal:
			raw = f.str()
		}
	}
	return key, value, raw, f.err
}

// fromMessage takes what a Check reads from a decoded CheckRequest: for callers in this process that hold
// one (Server.Check, Request). It reads the same fields decodeCheckRequest does.
func fromMessage(req *authv3.CheckRequest) checkRequest {
	attrs := req.GetAttributes()
	http := attrs.GetRequest().GetHttp()
	r := checkRequest{
		method: http.GetMethod(), host: http.GetHost(), path: http.GetPath(), id: http.GetId(),
		ext: attrs.GetContextExtensions(),
	}
	if hs := http.GetHeaders(); len(hs) > 0 {
		r.headers = make([]headerField, 0, len(hs))
		for k, v := range hs {
			r.headers = append(r.headers, headerField{k, v})
		}
	}
	for _, h := range http.GetHeaderMap().GetHeaders() {
		r.raw = append(r.raw, rawHeader{key: h.GetKey(), value: h.GetValue(), raw: string(h.GetRawValue())})
	}
	return r
}

// Request translates a CheckRequest. Header names arrive lower-cased from Envoy, in the headers map or, with
// encode_raw_headers, in header_map with raw byte values and one entry per header line: repeated headers are
// joined as Envoy joins them for the headers map (see rawHeaders).
func Request(req *authv3.CheckRequest) authz.Request {
	r := fromMessage(req)
	return r.request()
}

func (c *checkRequest) request() authz.Request {
	r := authz.Request{Method: c.method, Host: c.host, Path: c.path, RequestID: c.id, ContextExtensions: c.ext}
	if len(c.raw) > 0 {
		r.Headers = c.raw
	} else {
		r.Headers = mapHeaders(c.headers) // read in place: Envoy lower-cases the names
	}
	if r.RequestID == "" {
		r.RequestID = r.Headers.Get("x-request-id")
	}
	return r
}

// mapHeaders is the headers map, read in place: a Check looks up two or three headers, and a header list is
// short. Names are matched exactly, as a map's keys are; the last entry of a name wins, as in a decoded map.
type mapHeaders []headerField

// Get returns the value of the lower-case header name.
func (hs mapHeaders) Get(name string) string {
	for i := len(hs) - 1; i >= 0; i-- {
		if hs[i].key == name {
			return hs[i].value
		}
	}
	return ""
}

// rawHeaders reads Envoy's header_map (encode_raw_headers) in place, without building a map per request.
// Names are matched case-insensitively (Envoy sends them lower-cased; the match does not rely on it) and raw
// byte values are preferred. Repeated cookie entries are joined with "; " (HTTP/2 sends each cookie as its
// own "crumb", RFC 9113 section 8.2.3, and a cookie list is "; "-separated, RFC 6265 section 5.4), every
// other repeated header with "," (RFC 9110 section 5.3); an empty entry adds nothing (RFC 9110 section
// 5.6.1). Joining cookies with "," would glue the last cookie of one entry to the first of the next, so its
// token could not be found.
type rawHeaders []rawHeader

// Get returns the value of the header, every occurrence joined (in linear time: a request may repeat a
// header many times).
func (hs rawHeaders) Get(name string) string {
	sep := ","
	if strings.EqualFold(name, "cookie") {
		sep = "; "
	}
	var first string
	var b strings.Builder
	n := 0
	for _, h := range hs {
		if h.key != name && !strings.EqualFold(h.key, name) {
			continue
		}
		v := h.value
		if h.raw != "" {
			v = h.raw
		}
		if v == "" {
			continue
		}
		switch n {
		case 0:
			first = v
		case 1:
			b.WriteString(first)
			fallthrough
		default:
			b.WriteString(sep)
			b.WriteString(v)
		}
		n++
	}
	if n > 1 {
		return b.String()
	}
	return first
}

// UnderscoredNames implements authz.HeaderLister.
func (hs mapHeaders) UnderscoredNames() []string {
	var out []string
	for _, h := range hs {
		if strings.IndexByte(h.key, '_') >= 0 {
			out = append(out, h.key)
		}
	}
	return out
}

// UnderscoredNames implements authz.HeaderLister.
func (hs rawHeaders) UnderscoredNames() []string {
	var out []string
	for _, h := range hs {
		if strings.IndexByte(h.key, '_') >= 0 {
			out = append(out, h.key)
		}
	}
	return out
}

// Every transport's headers list their names, for the look-alike check.
var (
	_ authz.HeaderLister = mapHeaders(nil)
	_ authz.HeaderLister = rawHeaders(nil)
	_ authz.HeaderLister = joinedHeaders(nil)
)
