package token_test

import (
	"errors"
	"testing"

	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// TestFind: Find returns what Extract returns without the shape check, and bounds the length the same.
func TestFind(t *testing.T) {
	t.Parallel()
	src := []token.Source{token.BearerSource}
	tests := []struct {
		name           string
		value          string
		wantFind       string
		wantFindErr    error
		wantExtractErr error
	}{
		{name: "well_formed", value: "Bearer a.b.c", wantFind: "a.b.c"},
		{name: "not_a_jws", value: "Bearer abc", wantFind: "abc", wantExtractErr: token.ErrMalformed},
		{name: "line_break", value: "Bearer a.b\n.c", wantFind: "a.b\n.c", wantExtractErr: token.ErrMalformed},
		{name: "too_large", value: "Bearer a.b." + string(make([]byte, 64)), wantFindErr: token.ErrTooLarge, wantExtractErr: token.ErrTooLarge},
		{name: "missing", value: "Basic xyz", wantFindErr: token.ErrMissing, wantExtractErr: token.ErrMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := token.HeaderMap{"authorization": tt.value}
			got, err := token.Find(h, src, 32)
			if got != tt.wantFind || !errors.Is(err, tt.wantFindErr) || (err == nil) != (tt.wantFindErr == nil) {
				t.Errorf("Find = %q, %v; want %q, %v", got, err, tt.wantFind, tt.wantFindErr)
			}
			_, err = token.Extract(h, src, 32)
			if !errors.Is(err, tt.wantExtractErr) || (err == nil) != (tt.wantExtractErr == nil) {
				t.Errorf("Extract error = %v, want %v", err, tt.wantExtractErr)
			}
		})
	}
}
