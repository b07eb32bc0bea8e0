package proxytest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cognito-authz/cognito-authz/pkg/testkit"
)

// TestREADMEQuotesTheTestedRecipes: the README's recipe blocks are the files the proxy tests run, byte for
// byte, so the documented config is the tested one. Each block follows a "<!-- tested: FILE -->" line.
func TestREADMEQuotesTheTestedRecipes(t *testing.T) {
	root, err := testkit.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"nginx.conf", "Caddyfile", "traefik-dynamic.yml"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			want, err := os.ReadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			got, err := quotedBlock(string(readme), "pkg/proxytest/testdata/"+name)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("README's block for %s differs from testdata/%[1]s; copy the tested file into the README:\n%s", name, lineDiff(string(want), got))
			}
		})
	}
}

// quotedBlock is the fenced code block that follows the "<!-- tested: path -->" marker: its lines between
// the fences, each with its newline.
func quotedBlock(doc, path string) (string, error) {
	marker := "<!-- tested: " + path + " -->\n"
	i := strings.Index(doc, marker)
	if i < 0 {
		return "", fmt.Errorf("README.md: no %s", "marker "+strings.TrimSpace(marker))
	}
	if strings.Count(doc, marker) > 1 {
		return "", fmt.Errorf("README.md: no %s", "a single "+strings.TrimSpace(marker)+" (it appears more than once)")
	}
	rest := doc[i+len(marker):]
	if !strings.HasPrefix(rest, "```") {
		return "", fmt.Errorf("README.md: no %s", "a ``` fence right after "+strings.TrimSpace(marker))
	}
	_, body, ok := strings.Cut(rest, "\n")
	if !ok {
		return "", fmt.Errorf("README.md: no %s", "the block after "+strings.TrimSpace(marker))
	}
	end := strings.Index(body, "\n```\n")
	if end < 0 && strings.HasPrefix(body, "```\n") {
		return "", nil
	}
	if end < 0 {
		return "", fmt.Errorf("README.md: no %s", "the closing fence of the block after "+strings.TrimSpace(marker))
	}
	return body[:end+1], nil
}

// lineDiff names the first line where a and b differ.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < max(len(al), len(bl)); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return "line " + strconv.Itoa(i+1) + ":\n  tested: " + x + "\n  README: " + y
		}
	}
	return "(no line differs)"
}
