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
