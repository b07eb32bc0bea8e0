package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cognito-authz/cognito-authz/pkg/testkit"
)

// cognitoLocalVersion is the cognito-local release that `make cognito-local`
// installs. Keep the two in step; a different installed version is reported
// in the test log but still used.
const cognitoLocalVersion = "5.3.0"

const (
	// cognitoLocalStartTimeout bounds one emulator start including retries.
	// A start takes about one second on a 2-core machine.
	cognitoLocalStartTimeout = 30 * time.Second
	// cognitoLocalStartAttempts is how often a start is retried when the
	// free port picked for it was taken by someone else in the meantime.
	cognitoLocalStartAttempts = 3
	// cognitoLocalLog is the emulator's stdout and stderr, in its data dir.
	cognitoLocalLog = "cognito-local.log"
)

// errCognitoLocalMissing means node or the cognito-local package is not
// installed; outside CI the e2e tests skip on it.
var errCognitoLocalMissing = errors.New("cognito-local is not installed")

// cognitoLocalInstall is an installed cognito-local and the node to run it.
type cognitoLocalInstall struct {
	node    string // path of the node binary
	dir     string // the npm prefix: COGNITO_LOCAL_DIR or <repo>/.cache/cognito-local
	startJS string // the package's CLI entry point
	version string // from the package's package.json
}

// findCognitoLocal locates node and the cognito-local package installed by
// `make cognito-local`. COGNITO_LOCAL_DIR overrides the npm prefix.
func findCognitoLocal() (cognitoLocalInstall, error) {
	dir := os.Getenv("COGNITO_LOCAL_DIR")
	if dir == "" {
		root, err := testkit.RepoRoot()
		if err != nil {
			return cognitoLocalInstall{}, err
		}
		dir = filepath.Join(root, ".cache", "cognito-local")
	}
	pkg := filepath.Join(dir, "node_modules", "cognito-local")
	inst := cognitoLocalInstall{dir: dir, startJS: filepath.Join(pkg, "lib", "bin", "start.js")}
	if _, err := os.Stat(inst.startJS); err != nil {
		return inst, fmt.Errorf("%w: %w (run `make cognito-local` or set COGNITO_LOCAL_DIR)", errCognitoLocalMissing, err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return inst, fmt.Errorf("%w: no node to run it: %w", errCognitoLocalMissing, err)
	}
	inst.node = node
	raw, err := os.ReadFile(filepath.Join(pkg, "package.json"))
	if err != nil {
		return inst, err
	}
	var meta struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		return inst, fmt.Errorf("parse %s/package.json: %w", pkg, err)
	}
	inst.version = meta.Version
	return inst, nil
}

// requireCognitoLocal returns the installed emulator. When it is missing the
// test skips, or fails in CI so that a broken install cannot pass silently.
func requireCognitoLocal(t testing.TB) cognitoLocalInstall {
	t.Helper()
	inst, err := findCognitoLocal()
	switch {
	case errors.Is(err, errCognitoLocalMissing) && !testkit.InCI():
		t.Skipf("skipping end-to-end test: %v", err)
	case err != nil:
		t.Fatalf("cognito-local: %v", err)
	}
	if inst.version != cognitoLocalVersion {
		t.Logf("cognito-local %s installed at %s, tests are written for %s", inst.version, inst.dir, cognitoLocalVersion)
	}
	return inst
}

// cognitoLocal is a running cognito-local emulator on a loopback port.
type cognitoLocal struct {
	endpoint string // http://127.0.0.1:PORT: the API endpoint and the issuer prefix
	dataDir  string // working directory; the emulator keeps its state in .cognito/ under it
	pid      int
	exited   chan struct{} // closed once the process has been reaped
	waitErr  error         // the process's exit status, valid once exited is closed
}

// startCognitoLocal starts an emulator of the test's own, with its state in
// t.TempDir(), and kills it when the test ends. Prefer sharedCognitoLocal;
// this one is for tests that need a fresh emulator.
func startCognitoLocal(t testing.TB) *cognitoLocal {
	t.Helper()
	inst := requireCognitoLocal(t)
	ctx, cancel := context.WithTimeout(t.Context(), cognitoLocalStartTimeout)
	defer cancel()
	dataDir := t.TempDir() // registered first, so removed after the process is dead
	start := time.Now()
	cl, err := launchCognitoLocal(ctx, inst, dataDir)
	if err != nil {
		t.Fatalf("start cognito-local: %v", err)
	}
	t.Logf("cognito-local %s ready at %s in %v", inst.version, cl.endpoint, time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := cl.stop(); err != nil {
			t.Errorf("stop cognito-local: %v", err)
		}
	})
	return cl
}

// shared is the one emulator of this test binary, started on first use by
// sharedCognitoLocal and stopped by TestMain.
var shared struct {
	once    sync.Once
	cl      *cognitoLocal
	err     error
	elapsed time.Duration
}

// sharedCognitoLocal returns the test binary's emulator, starting it on first
// use. Tests isolate themselves by creating their own user pool in it.
func sharedCognitoLocal(t testing.TB) *cognitoLocal {
	t.Helper()
	inst := requireCognitoLocal(t)
	shared.once.Do(func() {
		// Not t.TempDir or t.Context: the emulator outlives the first test.
		dataDir, err := os.MkdirTemp("", "cognito-local-")
		if err != nil {
			shared.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), cognitoLocalStartTimeout)
		defer cancel()
		start := time.Now()
		shared.cl, shared.err = launchCognitoLocal(ctx, inst, dataDir)
		shared.elapsed = time.Since(start)
		if shared.err != nil {
			os.RemoveAll(dataDir)
		}
	})
	if shared.err != nil {
		t.Fatalf("start shared cognito-local: %v", shared.err)
	}
	t.Logf("shared cognito-local %s at %s (started in %v)", inst.version, shared.cl.endpoint, shared.elapsed.Round(time.Millisecond))
	return shared.cl
}

// stopSharedCognitoLocal stops the shared emulator, if one was started, and
// removes its data dir.
func stopSharedCognitoLocal() error {
	if shared.cl == nil {
		return nil
	}
	err := shared.cl.stop()
	return errors.Join(err, os.RemoveAll(shared.cl.dataDir))
}

// launchCognitoLocal starts the emulator on a free loopback port with its
// state under dataDir and waits until it serves requests. It retries on a
// new port when the one picked was taken before node could bind it.
func launchCognitoLocal(ctx context.Context, inst cognitoLocalInstall, dataDir string) (*cognitoLocal, error) {
	var errs []error
	for range cognitoLocalStartAttempts {
		port, err := freeLoopbackPort()
		if err != nil {
			return nil, err
		}
		cl, err := startCognitoLocalOn(ctx, inst, dataDir, port)
		if err == nil {
			return cl, nil
		}
		errs = append(errs, err)
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// errAddrInUse means the emulator could not bind its port.
var errAddrInUse = errors.New("port already in use")

// freeLoopbackPort returns a port that was free on 127.0.0.1 a moment ago.
// cognito-local cannot listen on port 0 and report the port it got: it puts
// PORT into the issuer of every token, so the port must be known up front.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startCognitoLocalOn runs one emulator on port and waits until it is ready.
//
// cognito-local 5.x reads PORT and HOST from the environment (defaults 9229
// and localhost), builds its issuer as http://HOST:PORT/<poolId>, and keeps
// its state in .cognito/ under its working directory: config.json there is
// its optional config file, db/ holds the user pools.
func startCognitoLocalOn(ctx context.Context, inst cognitoLocalInstall, dataDir string, port int) (*cognitoLocal, error) {
	if err := writeCognitoLocalConfig(dataDir); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dataDir, cognitoLocalLog))
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	// Not exec.CommandContext: the shared emulator outlives ctx.
	cmd := exec.Command(inst.node, inst.startJS)
	cmd.Dir = dataDir
	cmd.Env = append(os.Environ(), "HOST=127.0.0.1", "PORT="+strconv.Itoa(port))
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	testkit.OwnProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", inst.node, err)
	}
	cl := &cognitoLocal{
		endpoint: "http://127.0.0.1:" + strconv.Itoa(port),
		dataDir:  dataDir,
		pid:      cmd.Process.Pid,
		exited:   make(chan struct{}),
	}
	go func() {
		cl.waitErr = cmd.Wait()
		close(cl.exited)
	}()
	if err := cl.waitReady(ctx); err != nil {
		return nil, errors.Join(err, cl.stop())
	}
	return cl, nil
}

// cognitoLocalConfig is the emulator's .cognito/config.json. Its built-in
// default makes every new pool use email as the username (UsernameAttributes
// [email]), unlike real Cognito, whose pools take plain usernames unless
// created otherwise; the empty list restores the AWS default. Arrays in this
// file replace the built-in ones instead of being merged into them.
const cognitoLocalConfig = `{"UserPoolDefaults": {"UsernameAttributes": []}}`

// writeCognitoLocalConfig writes cognitoLocalConfig under dataDir.
func writeCognitoLocalConfig(dataDir string) error {
	dir := filepath.Join(dataDir, ".cognito")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), []byte(cognitoLocalConfig), 0o644)
}

// waitReady polls GET /health, which answers {"ok":true} once the emulator
// has loaded its data store and listens. It does not log a machine-readable
// ready line; its "Cognito Local running on ..." line comes at the same time.
func (cl *cognitoLocal) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if cl.healthy(ctx, client) {
			return nil
		}
		select {
		case <-cl.exited:
			log := cl.logTail()
			if strings.Contains(log, "EADDRINUSE") {
				return fmt.Errorf("%w: %s", errAddrInUse, cl.endpoint)
			}
			return fmt.Errorf("cognito-local exited before it was ready (%v); log:\n%s", cl.waitErr, log)
		case <-ctx.Done():
			return fmt.Errorf("cognito-local not ready at %s: %w; log:\n%s", cl.endpoint, ctx.Err(), cl.logTail())
		case <-tick.C:
		}
	}
}

func (cl *cognitoLocal) healthy(ctx context.Context, client *http.Client) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cl.endpoint+"/health", nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var body struct {
		OK bool `json:"ok"`
	}
	return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&body) == nil && body.OK
}

// ansiEscape matches the colour codes pino-pretty writes even into a file.
var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;]*m`)

// logTail returns the end of the emulator's output for error messages.
func (cl *cognitoLocal) logTail() string {
	const limit = 4 << 10
	b, err := os.ReadFile(filepath.Join(cl.dataDir, cognitoLocalLog))
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if len(b) > limit {
		b = b[len(b)-limit:]
	}
	return ansiEscape.ReplaceAllString(string(b), "")
}

// stop kills the emulator's process group and waits until it is reaped.
func (cl *cognitoLocal) stop() error {
	select {
	case <-cl.exited:
		return nil // already gone: nothing to kill, and its pid may be reused
	default:
	}
	if err := testkit.KillProcessGroup(cl.pid); err != nil {
		return fmt.Errorf("kill cognito-local (pid %d): %w", cl.pid, err)
	}
	select {
	case <-cl.exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("cognito-local (pid %d) still running 10s after SIGKILL", cl.pid)
	}
}

// issuer is the iss claim of the emulator's tokens for poolID. Its discovery
// document names http://localhost:9229 whatever HOST and PORT are, so tests
// derive the issuer from the endpoint instead.
func (cl *cognitoLocal) issuer(poolID string) string {
	return cl.endpoint + "/" + poolID
}

// jwksURL is where the emulator serves the key set for poolID.
func (cl *cognitoLocal) jwksURL(poolID string) string {
	return cl.issuer(poolID) + "/.well-known/jwks.json"
}
