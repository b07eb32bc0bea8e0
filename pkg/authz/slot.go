package authz

import "sync/atomic"

// Slot is an opaque place a transport keeps what it derives, once, from the shared parts of a Decision:
// extauthz keeps a pre-encoded CheckResponse there, so a cached identity's allow and a reason's deny are
// marshalled once and not per request. authz never reads it.
//
// A Decision carries a Slot only while its Outcome, Reason, Description, Body, Headers and Remove are the
// shared, read-only parts the Slot belongs to: one Slot per prebuilt deny and one per cached identity, so
// a Slot lives exactly as long as what it was derived from (an evicted cache entry, a replaced Authorizer
// after a reload). Whoever changes any of those fields on a copy must drop the Slot (nil).
type Slot struct{ v atomic.Pointer[any] }

// Load returns what was stored, or nil.
func (s *Slot) Load() any {
	if p := s.v.Load(); p != nil {
		return *p
	}
	return nil
}

// Store keeps v for every later Load. Concurrent first uses may both store: what they store is the same.
func (s *Slot) Store(v any) { s.v.Store(&v) }
