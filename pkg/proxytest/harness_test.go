package proxytest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cognito-authz/cognito-authz/pkg/testkit"
)

// TestMain removes the service binary testkit.ServiceBinary built.
func TestMain(m *testing.M) {
	code := m.Run()
	testkit.RemoveServiceBinary()
	os.Exit(code)
}

// requireBinary returns the proxy binary named by env (set by the Makefile), else the first of defaults
// that exists. Missing: the test skips, or fails in CI, so that a broken install cannot pass silently.
func requireBinary(t *testing.T, env string, defaults ...string) string {
	t.Helper()
	cands := defaults
	if v := os.Getenv(env); v != "" {
		cands = []string{v}
	}
	for _, c := range cands {
		if c == "" {
			continue
		}
		if !filepath.IsAbs(c) {
			if root, err := testkit.RepoRoot(); err == nil && strings.Contains(c, "/") {
				c = filepath.Join(root, c)
			} else if p, err := exec.LookPath(c); err == nil {
				c = p
			}
		}
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() {
			return c
		}
		// The Makefile keeps the reason a build from source failed next to where the binary would be
		// (Traefik, when it does not build with this Go): a known reason skips, in CI too.
		if why, err := os.ReadFile(filepath.Join(filepath.Dir(c), "build-failed")); err == nil {
			t.Skipf("%s: %s", env, why)
		}
	}
	msg := fmt.Sprintf("%s: none of %q is installed (run `make proxies`, or set %s)", env, cands, env)
	if testkit.InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// startService runs `cognito-authz serve -config FILE` on loopback ports, learns the HTTP protocol's address
// from its JSON log, waits until /readyz answers 200, and stops it with SIGTERM at cleanup.
func startService(t *testing.T, configYAML string) (httpAddr string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(configYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testkit.ServiceBinary(t), "serve", "-config", path)
	cmd.Env = append(os.Environ(), "COGNITO_AUTHZ_LOG_FORMAT=json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	testkit.OwnProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			testkit.KillProcessGroup(cmd.Process.Pid)
			<-exited
			t.Error("cognito-authz did not exit within 15s of SIGTERM")
		}
	})
	addrs := make(chan [2]string, 1)
	var logMu sync.Mutex
	var logTail []string
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			logMu.Lock()
			logTail = append(logTail, line)
			logMu.Unlock()
			var rec struct{ Msg, HTTP, Admin string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "cognito-authz listening" {
				addrs <- [2]string{rec.HTTP, rec.Admin}
			}
		}
		cmd.Wait()
	}()
	logs := func() string {
		logMu.Lock()
		defer logMu.Unlock()
		return strings.Join(logTail, "\n")
	}
	var admin string
	select {
	case a := <-addrs:
		httpAddr, admin = a[0], a[1]
	case <-exited:
		t.Fatalf("cognito-authz exited at start:\n%s", logs())
	case <-time.After(30 * time.Second):
		t.Fatalf("cognito-authz did not log its addresses within 30s:\n%s", logs())
	}
	if httpAddr == "" {
		t.Fatalf("cognito-authz logged no HTTP protocol address:\n%s", logs())
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return httpAddr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("cognito-authz not ready within 20s:\n%s", logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// seen is what the echo upstream received, as it answers it.
type seen struct {
	Method string              `json:"method"`
	URI    string              `json:"uri"`
	Host   string              `json:"host"`
	Header map[string][]string `json:"header"`
}

// startUpstream is the echo upstream: it answers 200 with exactly the request line and headers it received.
func startUpstream(t *testing.T) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Upstream", "echo")
		json.NewEncoder(w).Encode(seen{Method: r.Method, URI: r.RequestURI, Host: r.Host, Header: r.Header})
	}))
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

// freePort is a loopback port nothing listens on at the moment: proxies take their port from a config file.
// Another process may take it before the proxy binds it; startProxy retries then.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// recipe reads a recipe from testdata and replaces its placeholders (addresses, as the README writes them)
// by the test's. Every placeholder must occur: a recipe edit cannot silently stop pointing at the test.
func recipe(t *testing.T, name string, repl map[string]string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	for from, to := range repl {
		if !strings.Contains(s, from) {
			t.Fatalf("recipe %s: %q not found", name, from)
		}
		s = strings.ReplaceAll(s, from, to)
	}
	return s
}

// proc is a running proxy.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	log    string // the file that holds its stdout and stderr
}

// startProc starts bin in dir with its output in a log file, in its own process group, and kills that
// group by the process's own PID at cleanup.
func startProc(t *testing.T, dir string, env []string, bin string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(dir, filepath.Base(bin)+".log")
	out, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	testkit.OwnProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		out.Close()
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, exited: make(chan struct{}), log: logPath}
	go func() {
		cmd.Wait()
		out.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		testkit.KillProcessGroup(cmd.Process.Pid)
		<-p.exited
	})
	return p
}

func (p *proc) output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// waitListening waits until addr accepts connections, the process exits (false), or 30 s pass (fatal).
func (p *proc) waitListening(t *testing.T, addr string) bool {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.exited:
			return false
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return true
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not listening on %s within 30s:\n%s", p.cmd.Path, addr, p.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
