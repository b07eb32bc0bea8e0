package main

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestLogsNeverHoldTokens runs the whole service at debug level (every allow logged too), plain and in
// dry run, over allows and denies with tokens in every place a client can put one, and then looks for
// every 16-byte window of every token in the logs.
func TestLogsNeverHoldTokens(t *testing.T) {
	t.Parallel()
	iss := startIssuer(t)
	access := iss.MustMint(t, iss.Access())
	id := iss.MustMint(t, iss.IDToken())
	m2m := iss.MustMint(t, iss.M2M())
	expiredClaims := iss.Access()
	expiredClaims["exp"] = time.Now().Add(-time.Hour).Unix()
	expired := iss.MustMint(t, expiredClaims)
	invalid := invalidTokens(t, iss)
	tokens := []string{access, id, m2m, expired}
	for _, tok := range invalid {
		tokens = append(tokens, tok)
	}
	// Malformed: a token cut short, one with a newline inside, one with a space, two joined by a comma.
	broken := []string{
		access[:len(access)/2],
		access[:100] + "\n" + access[100:],
		access[:100] + " " + access[100:],
		access + "," + id,
		strings.ReplaceAll(access, ".", "\n"),
	}
	tokens = append(tokens, broken...)

	var requests []map[string]string
	for _, tok := range tokens {
		requests = append(requests,
			map[string]string{"authorization": "Bearer " + tok, "x-request-id": "req-" + tok[:4]},
			map[string]string{"authorization": "bearer   " + tok + "  "},
			map[string]string{"authorization": "Bearer " + tok + "\r\nx-injected: 1"},
			map[string]string{"authorization": "Basic " + tok},
			map[string]string{"cookie": "session=" + tok + "; id_token=" + tok},
			map[string]string{"authorization": "Bearer " + access, "cookie": "other=" + tok},
			map[string]string{"x-forwarded-access-token": tok},
		)
	}

	for _, dryRun := range []bool{false, true} {
		cfg := testConfig(iss.pool("main"))
		cfg.DryRun = dryRun
		s := startOps(t, cfg)
		s.waitReady(t)
		var allows, denies int
		for _, h := range requests {
			if s.check(t, h).Allowed {
				allows++
			} else {
				denies++
			}
		}
		// The token in the query string: the logged path has no query.
		for _, tok := range tokens[:4] {
			s.checkPath(t, "/callback?access_token="+url.QueryEscape(tok)+"#id_token="+tok, map[string]string{"authorization": "Bearer " + tok})
		}
		logs := s.logs.String()
		t.Logf("dry_run=%v: %d allowed, %d denied, %d bytes of logs", dryRun, allows, denies, len(logs))
		if dryRun && denies != 0 {
			t.Errorf("dry run denied %d requests", denies)
		}

		var lines, decisions int
		for line := range strings.Lines(logs) {
			lines++
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("log line is not JSON: %q", line)
			}
			if m["msg"] == "allow" || m["msg"] == "deny" {
				decisions++
				if p, _ := m["path"].(string); strings.ContainsAny(p, "?#") {
					t.Errorf("logged path %q holds a query or fragment", p)
				}
			}
		}
		if decisions < len(requests) {
			t.Errorf("%d decision lines for %d requests: allows are logged at debug, denies at info", decisions, len(requests))
		}
		for _, tok := range tokens {
			for i := 0; i+16 <= len(tok); i++ {
				if w := tok[i : i+16]; strings.Contains(logs, w) {
					t.Fatalf("dry_run=%v: the logs hold %q, a piece of a token:\n%s", dryRun, w, aroundOf(logs, w))
				}
			}
		}
	}
}

// aroundOf returns the log line holding w.
func aroundOf(logs, w string) string {
	for line := range strings.Lines(logs) {
		if strings.Contains(line, w) {
			return line
		}
	}
	return ""
}
