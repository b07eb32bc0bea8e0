package token_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/cognito-authz/cognito-authz/pkg/token"
)

func TestWithoutCookies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, line  string
		want        string
		wantDropped bool
	}{
		{name: "middle", line: "a=1; id_token=x.y.z; b=2", want: "a=1; b=2", wantDropped: true},
		{name: "only", line: "id_token=x.y.z", want: "", wantDropped: true},
		{name: "twice", line: "id_token=1;id_token=2; c=3", want: "c=3", wantDropped: true},
		{name: "both_names", line: "access_token=1; id_token=2; c=3", want: "c=3", wantDropped: true},
		{name: "padded_name", line: "a=1;  id_token =x", want: "a=1", wantDropped: true},
		{name: "absent_kept_verbatim", line: "a=1;b=2", want: "a=1;b=2"},
		{name: "prefix_is_another_name", line: "id_token2=x; xid_token=y", want: "id_token2=x; xid_token=y"},
		{name: "broken_cookie_kept", line: "bad\x01=x; id_token=y", want: "bad\x01=x", wantDropped: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, dropped := token.WithoutCookies(tt.line, []string{"id_token", "access_token"})
			if got != tt.want || dropped != tt.wantDropped {
				t.Errorf("WithoutCookies(%q) = %q, %v; want %q, %v", tt.line, got, dropped, tt.want, tt.wantDropped)
			}
		})
	}
}

// FuzzWithoutCookies: whatever the client's Cookie header, no cookie source can read a token from what is
// left, and nothing else is lost.
func FuzzWithoutCookies(f *testing.F) {
	for _, s := range []string{"a=1; id_token=x", "id_token=x", "; ;id_token", "a=1", "id_token=a=b; c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		got, dropped := token.WithoutCookies(line, []string{"id_token"})
		if _, err := token.Extract(token.HeaderMap{"cookie": got}, []token.Source{{Cookie: "id_token"}}, 1<<20); !errors.Is(err, token.ErrMissing) && got != "" {
			t.Fatalf("WithoutCookies(%q) = %q: the id_token source still finds a credential (%v)", line, got, err)
		}
		if !dropped && got != line {
			t.Fatalf("WithoutCookies(%q) changed the line to %q without dropping anything", line, got)
		}
		for part := range strings.SplitSeq(got, ";") {
			if p := strings.Trim(part, " \t"); p != "" && !slices.Contains(strings.Split(line, ";"), part) && !strings.Contains(line, p) {
				t.Fatalf("WithoutCookies(%q) = %q: %q is not from the line", line, got, p)
			}
		}
	})
}
