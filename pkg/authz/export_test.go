package authz

import "fmt"

// DenyFor exposes the prebuilt deny of a reason to the tests.
func DenyFor(r Reason) Decision { return denial(reasonInfo[r].outcome, r, reasonInfo[r].text) }

// ReasonsComplete reports a reason that has a deny but is not listed in Reasons, or the reverse.
func ReasonsComplete() error {
	listed := map[Reason]bool{}
	for _, r := range Reasons {
		listed[r] = true
		if _, ok := reasonInfo[r]; !ok && r != ReasonOK {
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
