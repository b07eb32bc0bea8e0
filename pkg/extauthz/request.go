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
	for i := 0; i < len(b); {
		num, ok, s, e, err := d.field(i, len(b))
		if err != nil {
			return err
		}
		if ok && num == fieldCheckAttributes {
			if err := d.attributes(r, s, e); err != nil {
				return err
			}
		}
		i = e
	}
	return nil
}

// decoder walks one message's bytes; s is the same bytes as a string, for substrings that cost nothing.
type decoder struct {
	b []byte
	s string
}

// field reads the field at b[i:end]: its number and, when it is length-delimited (bytes), its contents
// b[start:next]. Any other field is checked for well-formed framing and skipped (start == next). next is
// where the field after it begins.
func (d *decoder) field(i, end int) (num protowire.Number, bytes bool, start, next int, err error) {
	num, typ, n := protowire.ConsumeTag(d.b[i:end])
	if n < 0 {
		return 0, false, 0, 0, fmt.Errorf("%w: %w", errMalformed, protowire.ParseError(n))
	}
	i += n
	if typ != protowire.BytesType {
		if n = protowire.ConsumeFieldValue(num, typ, d.b[i:end]); n < 0 {
			return 0, false, 0, 0, fmt.Errorf("%w: field %d: %w", errMalformed, num, protowire.ParseError(n))
		}
		return num, false, i + n, i + n, nil
	}
	v, n := protowire.ConsumeBytes(d.b[i:end])
	if n < 0 {
		return 0, false, 0, 0, fmt.Errorf("%w: field %d: %w", errMalformed, num, protowire.ParseError(n))
	}
	return num, true, i + n - len(v), i + n, nil
}

// attributes decodes an AttributeContext, b[i:end].
func (d *decoder) attributes(r *checkRequest, i, end int) error {
	for i < end {
		num, ok, s, e, err := d.field(i, end)
		if err != nil {
			return err
		}
		switch {
		case !ok:
		case num == fieldAttrsRequest:
			err = d.request(r, s, e)
		case num == fieldAttrsExtensions:
			var k, v string
			k, v, err = d.entry(s, e)
			if r.ext == nil {
				r.ext = make(map[string]string)
			}
			r.ext[k] = v
		}
		if err != nil {
			return err
		}
		i = e
	}
	return nil
}

// request decodes an AttributeContext.Request, b[i:end].
func (d *decoder) request(r *checkRequest, i, end int) error {
	for i < end {
		num, ok, s, e, err := d.field(i, end)
		if err != nil {
			return err
		}
		if ok && num == fieldRequestHTTP {
			if err := d.http(r, s, e); err != nil {
				return err
			}
		}
		i = e
	}
	return nil
}

// http decodes an AttributeContext.HttpRequest, b[i:end].
func (d *decoder) http(r *checkRequest, i, end int) error {
	for i < end {
		num, ok, s, e, err := d.field(i, end)
		if err != nil {
			return err
		}
		switch {
		case !ok:
		case num == fieldHTTPID:
			r.id = d.s[s:e]
		case num == fieldHTTPMethod:
			r.method = d.s[s:e]
		case num == fieldHTTPPath:
			r.path = d.s[s:e]
		case num == fieldHTTPHost:
			r.host = d.s[s:e]
		case num == fieldHTTPHeaders:
			if r.headers == nil {
				r.headers = make([]headerField, 0, 16) // a browser's or an API client's headers, in one allocation
			}
			var h headerField
			h.key, h.value, err = d.entry(s, e)
			r.headers = append(r.headers, h)
		case num == fieldHTTPHeaderMap:
			err = d.headerMap(r, s, e)
		}
		if err != nil {
			return err
		}
		i = e
	}
	return nil
}

// headerMap decodes a HeaderMap, b[i:end].
func (d *decoder) headerMap(r *checkRequest, i, end int) error {
	for i < end {
		num, ok, s, e, err := d.field(i, end)
		if err != nil {
			return err
		}
		if ok && num == fieldHeaderMapHeaders {
			var h rawHeader
			if h.key, h.value, h.raw, err = d.headerValue(s, e); err != nil {
				return err
			}
			r.raw = append(r.raw, h)
		}
		i = e
	}
	return nil
}

// entry decodes a map<string,string> entry, b[i:end]; a missing key or value is "".
func (d *decoder) entry(i, end int) (key, value string, err error) {
	key, value, _, err = d.headerValue(i, end) // an entry's key and value are HeaderValue's field numbers
	return key, value, err
}

// headerValue decodes a HeaderValue, b[i:end].
func (d *decoder) headerValue(i, end int) (key, value, raw string, err error) {
	for i < end {
		num, ok, s, e, err := d.field(i, end)
		if err != nil {
			return "", "", "", err
		}
		switch {
		case !ok:
		case num == fieldHeaderValueKey:
			key = d.s[s:e]
		case num == fieldHeaderValueValue:
			value = d.s[s:e]
		case num == fieldHeaderValueRawVal:
			raw = d.s[s:e]
		}
		i = e
	}
	return key, value, raw, nil
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

// HeaderNames implements authz.HeaderLister.
func (hs mapHeaders) HeaderNames(yield func(string) bool) {
	for _, h := range hs {
		if !yield(h.key) {
			return
		}
	}
}

// HeaderNames implements authz.HeaderLister.
func (hs rawHeaders) HeaderNames(yield func(string) bool) {
	for _, h := range hs {
		if !yield(h.key) {
			return
		}
	}
}

// Every transport's headers list their names, for the look-alike check.
var (
	_ authz.HeaderLister = mapHeaders(nil)
	_ authz.HeaderLister = rawHeaders(nil)
	_ authz.HeaderLister = joinedHeaders(nil)
)
