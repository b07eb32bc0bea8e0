package api_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
)

// TestSamplesDecodeStrictly reads every sample the way grpcurl and Envoy would: unknown fields are errors.
func TestSamplesDecodeStrictly(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("samples/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var req authv3.CheckRequest
			if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(b, &req); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if err := req.ValidateAll(); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if req.GetAttributes().GetRequest().GetHttp().GetHeaders()["authorization"] == "" {
				t.Errorf("%s: no authorization header", f)
			}
		})
	}
}

// TestReadmeListsEveryReason keeps the README's reason table and authz.Reasons identical, in order.
func TestReadmeListsEveryReason(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| (\\d{3}) \\|").FindAllStringSubmatch(string(b), -1) {
		got = append(got, m[1])
	}
	var want []string
	for _, r := range authz.Reasons {
		if r != authz.ReasonOK && r != authz.ReasonAnonymous { // allow reasons have no deny row
			want = append(want, string(r))
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("README reason table differs from authz.Reasons (-code +README):\n%s", diff)
	}
	if !slices.Contains(got, "token_missing") {
		t.Error("README table not found")
	}
}
