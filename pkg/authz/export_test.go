package authz

import (
	"fmt"
	"slices"
)

// DenyFor exposes the prebuilt deny of a reason to the tests.
func DenyFor(r Reason) Decision { return denial(reasonInfo[r].outcome, r, reasonInfo[r].text) }

// IsAllowReason reports whether r is the reason of an allow.
func IsAllowReason(r Reason) bool { return slices.Contains(allowReasons, r) }

// ReasonsComplete reports a reason that has a deny but is not listed in Reasons, or the reverse.
func ReasonsComplete() error {
	listed := map[Reason]bool{}
	for _, r := range Reasons {
		listed[r] = true
		if _, ok := reasonInfo[r]; !ok && !slices.Contains(allowReasons, r) {
			return fmt.Errorf("reason %q is listed but has no deny", r)
		}
	}
	for r := range reasonInfo {
		if !listed[r] {
			return fmt.Errorf("reason %q has a deny but is not listed in Reasons", r)
		}
	}
	return nil
}

// Cached reports whether the cache would serve raw now (an entry that may not serve is dropped).
func (a *Authorizer) Cached(raw string) bool {
	if a.cache == nil {
		return false
	}
	_, ok := a.cache.lookup(key(raw))
	return ok
}

// CacheSize is the number of entries and their total weight, after pending evictions have run.
func (a *Authorizer) CacheSize() (entries int, weight uint64) {
	a.cache.c.CleanUp()
	return a.cache.c.EstimatedSize(), a.cache.c.WeightedSize()
}

// CleanUpCache runs the pending evictions of both caches.
func (a *Authorizer) CleanUpCache() {
	a.cache.c.CleanUp()
	if a.cache.neg != nil {
		a.cache.neg.CleanUp()
	}
}

// RaceEnabled reports a -race build, whose instrumentation allocates.
const RaceEnabled = raceEnabled
