package extauthz

import (
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// A CheckResponse is encoded once per shared decision and assembled per request from bytes.
//
// A protobuf message is the concatenation of its fields, so an answer is
//
//	head: status (1) and denied_response (2) or ok_response (3), marshalled once per prebuilt deny and per
//	      cached identity from the CheckResponse Response builds (kept in the decision's authz.Slot)
//	dynamic_metadata (4): tag, length, and the Struct's map entries: outcome, reason, rule, dry_run, and
//	      with identity metadata on, the identity's (marshalled once with the head for a cached allow)
//
// The Struct is a nested message, so its length prefix is computed per answer from the entries it holds;
// the head is never changed. The answer travels as the unknown fields of an otherwise empty CheckResponse,
// which every protobuf marshaller writes out verbatim, so it is correct under any codec; Codec writes it
// without a copy. Its Status field is set too (the same status as in the bytes), so a reader in this
// process never mistakes a deny for an OK: Summarize decodes the whole answer.

// wire is the encoded fixed part of one decision: what is the same for every answer its Slot serves.
type wire struct {
	// What it was built from, checked on every use: a Slot is filled once, and a copy of a decision that
	// changed these must not get another's bytes.
	outcome  authz.Outcome
	reason   authz.Reason
	dryRun   bool
	id       *token.Identity // the cached identity of an allow; nil otherwise
	identity bool            // built with identity metadata

	status *rpcstatus.Status // the head's status, for in-process readers
	head   []byte            // fields 1 to 3
	idMeta []byte            // an allow's identity metadata entries (identity on)
}

// fixed returns d's encoded fixed part: from d's Slot when it holds one built for d, else built now (and
// kept in the Slot for the next answer).
func (s *Server) fixed(d *authz.Decision) *wire {
	if d.Slot != nil {
		if w, ok := d.Slot.Load().(*wire); ok && w.outcome == d.Outcome && w.reason == d.Reason &&
			w.dryRun == d.DryRun && w.id == allowed(d) && w.identity == s.identity {
			return w
		}
	}
	r := response(d, false)
	r.DynamicMetadata = nil
	head, err := marshal(r)
	if err != nil {
		// Cannot happen: every field is well-formed by construction, and vtprotobuf's marshalling fails only
		// on a foreign message that proto.Marshal refuses. Never answer OK on it: a bare UNAVAILABLE status
		// is a deny Envoy understands (503 by its status_on_error), and nothing is kept.
		r = &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(codes.Unavailable), Message: "response encoding failed"}}
		head, _ = marshal(r)
		return &wire{status: r.Status, head: head}
	}
	w := &wire{outcome: d.Outcome, reason: d.Reason, dryRun: d.DryRun, identity: s.identity, status: r.Status, head: head}
	if w.id = allowed(d); w.id != nil {
		if s.identity {
			w.idMeta = appendIdentityMetadata(nil, d.Identity)
		}
	}
	if d.Slot != nil {
		d.Slot.Store(w)
	}
	return w
}

// marshal encodes r once, with vtprotobuf's generated code when the build has it (-tags vtprotobuf, as
// make build, the image and make bench build), else with proto.Marshal. Either is the same protobuf.
func marshal(r *authv3.CheckResponse) ([]byte, error) {
	if m, ok := any(r).(vtMarshaler); ok {
		b := make([]byte, m.SizeVT())
		n, err := m.MarshalToSizedBufferVTStrict(b)
		return b[len(b)-n:], err
	}
	return proto.Marshal(r)
}

// allowed is the identity of a non-dry-run allow, the only decision whose Slot holds one (a cached
// identity's); nil for every other.
func allowed(d *authz.Decision) *token.Identity {
	if d.Allowed() && !d.DryRun {
		return d.Identity
	}
	return nil
}

// answer is one Check's CheckResponse, encoded: what the gRPC handler gives Codec to write as it is.
type answer struct {
	status *rpcstatus.Status // the status in b, for response
	b      []byte
}

// response is the answer as a CheckResponse for a reader in this process: Status set, and the whole message
// in its unknown fields (see preEncoded), so any codec writes the same bytes.
func (a *answer) response() *authv3.CheckResponse {
	r := &authv3.CheckResponse{Status: a.status}
	r.ProtoReflect().SetUnknown(protoreflect.RawFields(a.b))
	return r
}

// encode is d's answer, assembled from its fixed part and this answer's metadata.
func (s *Server) encode(d *authz.Decision) *answer {
	w := s.fixed(d)
	outcome, rule := d.Label(), d.Rule
	metaLen := stringEntrySize(keyOutcome, outcome) + stringEntrySize(keyReason, string(d.Reason)) +
		stringEntrySize(keyRule, rule) + boolEntrySize(keyDryRun)
	var idMeta []byte
	if s.identity {
		if w.id != nil {
			idMeta = w.idMeta
		} else if d.Identity != nil {
			idMeta = appendIdentityMetadata(nil, d.Identity) // a deny's or dry run's identity varies
		}
		metaLen += len(idMeta)
	}
	b := make([]byte, 0, len(w.head)+1+protowire.SizeVarint(uint64(metaLen))+metaLen)
	b = append(b, w.head...)
	b = protowire.AppendTag(b, 4, protowire.BytesType) // CheckResponse.dynamic_metadata
	b = protowire.AppendVarint(b, uint64(metaLen))
	b = appendStringEntry(b, keyOutcome, outcome)
	b = appendStringEntry(b, keyReason, string(d.Reason))
	b = appendStringEntry(b, keyRule, rule)
	b = appendBoolEntry(b, keyDryRun, d.DryRun)
	b = append(b, idMeta...)
	return &answer{status: w.status, b: b}
}

// preEncoded returns the bytes of a response encode made: no field but the Status copy, and unknown fields
// holding the whole message.
func preEncoded(r *authv3.CheckResponse) ([]byte, bool) {
	if r.HttpResponse != nil || r.DynamicMetadata != nil {
		return nil, false
	}
	b := r.ProtoReflect().GetUnknown()
	return b, len(b) > 0
}

// The dynamic metadata keys (see Metadata).
const (
	keyOutcome  = "outcome"
	keyReason   = "reason"
	keyRule     = "rule"
	keyDryRun   = "dry_run"
	keySub      = "sub"
	keyClientID = "client_id"
	keyTokenUse = "token_use"
	keyPool     = "pool"
)

// appendIdentityMetadata appends the identity's metadata entries, the non-empty ones, as Metadata has them.
func appendIdentityMetadata(b []byte, id *token.Identity) []byte {
	for _, kv := range [...][2]string{{keySub, id.Subject}, {keyClientID, id.ClientID}, {keyTokenUse, id.TokenUse}, {keyPool, id.Pool}} {
		if kv[1] != "" {
			b = appendStringEntry(b, kv[0], kv[1])
		}
	}
	return b
}

// A Struct (google.protobuf.Struct) is its map<string, Value> fields (1), each entry a message of the key
// (1) and the Value (2); a Value holds string_value (3) or bool_value (4).

// stringValueSize is the size of Value{string_value: v}.
func stringValueSize(v string) int { return 1 + protowire.SizeBytes(len(v)) }

// entrySize is the size of a map entry's body.
func entrySize(key string, valueSize int) int {
	return 1 + protowire.SizeBytes(len(key)) + 1 + protowire.SizeBytes(valueSize)
}

func stringEntrySize(key, v string) int {
	return 1 + protowire.SizeBytes(entrySize(key, stringValueSize(v)))
}

func boolEntrySize(key string) int { return 1 + protowire.SizeBytes(entrySize(key, 2)) }

func appendStringEntry(b []byte, key, v string) []byte {
	vs := stringValueSize(v)
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(entrySize(key, vs)))
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, key)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(vs))
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	return protowire.AppendString(b, v)
}

func appendBoolEntry(b []byte, key string, v bool) []byte {
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(entrySize(key, 2)))
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, key)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendVarint(b, 2)
	b = protowire.AppendTag(b, 4, protowire.VarintType)
	return protowire.AppendVarint(b, protowire.EncodeBool(v))
}
