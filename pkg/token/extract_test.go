package token_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/cognito-authz/cognito-authz/pkg/token"
)

func TestExtract(t *testing.T) {
	t.Parallel()
	// Shape only: Extract never decodes, so any three base64url segments will do.
	const (
		tok1 = "aGVhZGVy.cGF5bG9hZA.c2ln"
		tok2 = "eyJhbGciOiJSUzI1NiJ9.e30.AAAA-_"
	)
	cookie := token.Source{Cookie: "id_token"}
	custom := token.Source{Header: "x-jwt"}
	tests := []struct {
		name    string
		headers token.Headers
		sources []token.Source // default: BearerSource
		max     int            // default: 8 KiB
		want    string
		wantErr error
	}{
		{name: "bearer", headers: token.HeaderMap{"authorization": "Bearer " + tok1}, want: tok1},
		{name: "bearer_lower_case", headers: token.HeaderMap{"authorization": "bearer " + tok1}, want: tok1},
		{name: "bearer_upper_case", headers: token.HeaderMap{"authorization": "BEARER " + tok1}, want: tok1},
		{name: "surrounding_spaces_and_tabs", headers: token.HeaderMap{"authorization": " \t Bearer \t  " + tok1 + " \t"}, want: tok1},
		{name: "tab_after_scheme", headers: token.HeaderMap{"authorization": "Bearer\t" + tok1}, want: tok1},
		{name: "http_header_canonical_names", headers: http.Header{"Authorization": {"Bearer " + tok1}}, want: tok1},
		{name: "bearer_alone", headers: token.HeaderMap{"authorization": "Bearer"}, wantErr: token.ErrMalformed},
		{name: "bearer_and_spaces", headers: token.HeaderMap{"authorization": "Bearer  \t "}, wantErr: token.ErrMalformed},
		{name: "basic_scheme", headers: token.HeaderMap{"authorization": "Basic xyz"}, wantErr: token.ErrMissing},
		{name: "scheme_glued_to_token", headers: token.HeaderMap{"authorization": "Bearer" + tok1}, wantErr: token.ErrMissing},
		{name: "bearerxyz", headers: token.HeaderMap{"authorization": "Bearerxyz"}, wantErr: token.ErrMissing},
		{name: "shorter_than_scheme", headers: token.HeaderMap{"authorization": "Bea"}, wantErr: token.ErrMissing},
		{name: "empty", headers: token.HeaderMap{"authorization": ""}, wantErr: token.ErrMissing},
		{name: "only_whitespace", headers: token.HeaderMap{"authorization": " \t "}, wantErr: token.ErrMissing},
		{name: "absent", headers: token.HeaderMap{}, wantErr: token.ErrMissing},
		{name: "no_sources", headers: token.HeaderMap{"authorization": "Bearer " + tok1}, sources: []token.Source{}, wantErr: token.ErrMissing},
		{name: "two_headers_merged_with_comma", headers: token.HeaderMap{"authorization": "Bearer " + tok1 + ",Bearer " + tok2}, wantErr: token.ErrMalformed},
		{name: "two_tokens_merged_with_comma", headers: token.HeaderMap{"authorization": "Bearer " + tok1 + ", " + tok2}, wantErr: token.ErrMalformed},
		{name: "one_segment", headers: token.HeaderMap{"authorization": "Bearer abc"}, wantErr: token.ErrMalformed},
		{name: "two_segments", headers: token.HeaderMap{"authorization": "Bearer abc.def"}, wantErr: token.ErrMalformed},
		{name: "four_segments", headers: token.HeaderMap{"authorization": "Bearer " + tok1 + ".x"}, wantErr: token.ErrMalformed},
		{name: "jwe_five_segments", headers: token.HeaderMap{"authorization": "Bearer a.b.c.d.e"}, wantErr: token.ErrMalformed},
		{name: "empty_segments", headers: token.HeaderMap{"authorization": "Bearer .."}, want: ".."}, // shape only; Verify rejects it
		{name: "padding", headers: token.HeaderMap{"authorization": "Bearer " + tok1 + "=="}, wantErr: token.ErrMalformed},
		{name: "std_base64_plus", headers: token.HeaderMap{"authorization": "Bearer a+b.cd.ef"}, wantErr: token.ErrMalformed},
		{name: "std_base64_slash", headers: token.HeaderMap{"authorization": "Bearer ab.c/d.ef"}, wantErr: token.ErrMalformed},
		{name: "inner_space", headers: token.HeaderMap{"authorization": "Bearer ab.c d.ef"}, wantErr: token.ErrMalformed},
		{name: "newline", headers: token.HeaderMap{"authorization": "Bearer ab.cd.e\nf"}, wantErr: token.ErrMalformed},
		{name: "nul_byte", headers: token.HeaderMap{"authorization": "Bearer ab.cd.e\x00f"}, wantErr: token.ErrMalformed},
		{name: "non_ascii", headers: token.HeaderMap{"authorization": "Bearer ab.cd.é"}, wantErr: token.ErrMalformed},
		{name: "at_max", headers: token.HeaderMap{"authorization": "Bearer " + tok1}, max: len(tok1), want: tok1},
		{name: "over_max", headers: token.HeaderMap{"authorization": "Bearer " + tok1}, max: len(tok1) - 1, wantErr: token.ErrTooLarge},
		{
			name:    "over_max_checked_before_shape",
			headers: token.HeaderMap{"authorization": "Bearer " + strings.Repeat(",", 100)},
			max:     10,
			wantErr: token.ErrTooLarge,
		},
		{name: "cookie", headers: token.HeaderMap{"cookie": "a=b; id_token=" + tok1 + "; c=d"}, sources: []token.Source{cookie}, want: tok1},
		{name: "cookie_absent", headers: token.HeaderMap{"cookie": "a=b"}, sources: []token.Source{cookie}, wantErr: token.ErrMissing},
		{name: "cookie_header_absent", headers: token.HeaderMap{}, sources: []token.Source{cookie}, wantErr: token.ErrMissing},
		{name: "cookie_empty_value", headers: token.HeaderMap{"cookie": "id_token="}, sources: []token.Source{cookie}, wantErr: token.ErrMissing},
		{name: "cookie_name_is_exact", headers: token.HeaderMap{"cookie": "ID_TOKEN=" + tok1}, sources: []token.Source{cookie}, wantErr: token.ErrMissing},
		{name: "cookie_first_non_empty", headers: token.HeaderMap{"cookie": "id_token=; id_token=" + tok1}, sources: []token.Source{cookie}, want: tok1},
		{name: "cookie_malformed", headers: token.HeaderMap{"cookie": "id_token=" + tok1 + ".x"}, sources: []token.Source{cookie}, wantErr: token.ErrMalformed},
		{name: "cookie_too_large", headers: token.HeaderMap{"cookie": "id_token=" + tok1}, sources: []token.Source{cookie}, max: 5, wantErr: token.ErrTooLarge},
		{
			// A broken cookie of some other application on the same domain must not hide ours.
			name:    "cookie_among_malformed_cookies",
			headers: token.HeaderMap{"cookie": "tracking; id_token=" + tok1 + "; bad name=x;"},
			sources: []token.Source{cookie},
			want:    tok1,
		},
		{name: "custom_header_without_prefix", headers: token.HeaderMap{"x-jwt": " " + tok1 + " "}, sources: []token.Source{custom}, want: tok1},
		{name: "custom_header_with_scheme_is_malformed", headers: token.HeaderMap{"x-jwt": "Bearer " + tok1}, sources: []token.Source{custom}, wantErr: token.ErrMalformed},
		{
			name:    "custom_header_with_prefix",
			headers: token.HeaderMap{"x-auth": "JWT " + tok1},
			sources: []token.Source{{Header: "x-auth", Prefix: "JWT "}},
			want:    tok1,
		},
		{
			name:    "first_source_wins",
			headers: token.HeaderMap{"authorization": "Bearer " + tok1, "cookie": "id_token=" + tok2},
			sources: []token.Source{token.BearerSource, cookie},
			want:    tok1,
		},
		{
			name:    "first_source_wins_reversed",
			headers: token.HeaderMap{"authorization": "Bearer " + tok1, "cookie": "id_token=" + tok2},
			sources: []token.Source{cookie, token.BearerSource},
			want:    tok2,
		},
		{
			name:    "absent_source_skipped",
			headers: token.HeaderMap{"cookie": "id_token=" + tok2},
			sources: []token.Source{token.BearerSource, cookie},
			want:    tok2,
		},
		{
			name:    "other_scheme_skipped",
			headers: token.HeaderMap{"authorization": "Basic dXNlcjpwYXNz", "cookie": "id_token=" + tok2},
			sources: []token.Source{token.BearerSource, cookie},
			want:    tok2,
		},
		{
			// A malformed credential in the first source is an answer, not a reason to look elsewhere.
			name:    "malformed_first_source_does_not_fall_through",
			headers: token.HeaderMap{"authorization": "Bearer nope", "cookie": "id_token=" + tok2},
			sources: []token.Source{token.BearerSource, cookie},
			wantErr: token.ErrMalformed,
		},
		{
			name:    "too_large_first_source_does_not_fall_through",
			headers: token.HeaderMap{"authorization": "Bearer " + tok1 + tok1, "cookie": "id_token=" + tok2},
			sources: []token.Source{token.BearerSource, cookie},
			max:     len(tok1),
			wantErr: token.ErrTooLarge,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sources, max := tt.sources, tt.max
			if sources == nil {
				sources = []token.Source{token.BearerSource}
			}
			if max == 0 {
				max = 8 << 10
			}
			got, err := token.Extract(tt.headers, sources, max)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Extract() error = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("Extract() = %q, want %q", got, tt.want)
			}
		})
	}
}
