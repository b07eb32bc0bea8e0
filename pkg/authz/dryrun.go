package authz

// DryRunHeader is the response header that marks a dry-run allow; its value is the would-be deny reason
// (for example "x-auth-dry-run: token_expired"). It goes to the downstream client only, never upstream:
// the upstream must see exactly what it sees for an anonymous request, and must not start to depend on a
// marker that disappears when the dry run ends.
const DryRunHeader = "x-auth-dry-run"

// DryRun turns a deny into the allow a dry run answers: the request proceeds as an anonymous one (every
// identity header removed, the token's headers removed unless forwarded, so nothing unverified reaches the
// upstream) while Reason, Rule, Err and Identity stay the deny's for the logs, metrics and dynamic
// metadata, and WouldBe keeps its outcome. An allow is returned unchanged. Check calls it for global
// (Options.DryRun) and per-rule dry runs alike, after its cancellation guard.
func (a *Authorizer) DryRun(d Decision) Decision {
	if d.Allowed() {
		return d
	}
	return Decision{
		Outcome: Allow, Reason: d.Reason, Description: d.Description, Remove: a.anonymous, Unset: a.unset,
		Identity: d.Identity, Rule: d.Rule, Err: d.Err, DryRun: true, WouldBe: d.Outcome,
	}
}

// dryRunLabels are the metric and log outcome of a dry-run allow, by would-be outcome: a closed set, made
// once so that labelling a request allocates nothing.
var dryRunLabels = func() [len(outcomeNames)]string {
	var l [len(outcomeNames)]string
	for i, n := range outcomeNames {
		l[i] = "dry_run_" + n
	}
	return l
}()

// Label is the decision's outcome as metrics and logs name it: the outcome, or dry_run_<would-be outcome>
// for a dry-run allow (so dry runs never count as allows or denies in dashboards and alerts).
func (d *Decision) Label() string {
	if d.DryRun {
		return dryRunLabels[d.WouldBe]
	}
	return d.Outcome.String()
}
