package extauthz

// ResponseFor is the reference CheckResponse of a decision, with or without identity metadata: what the
// pre-encoded answers are tested against.
var ResponseFor = response
