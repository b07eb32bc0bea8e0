package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// proc is a server process under test.
type proc struct {
	name string
	cmd  *exec.Cmd
	addr string // gRPC address
}

// pinned runs argv on cpu when taskset is available.
func pinned(ctx context.Context, cpu int, argv ...string) *exec.Cmd {
	if path, err := exec.LookPath("taskset"); err == nil && cpu >= 0 {
		argv = append([]string{path, "-c", strconv.Itoa(cpu)}, argv...)
	}
	return exec.CommandContext(ctx, argv[0], argv[1:]...)
}

// startServer starts cognito-authz with config file cfg and waits for its listening line (JSON log).
func startServer(ctx context.Context, name, bin, cfg string) (*proc, error) {
	cmd := pinned(ctx, 0, bin, "serve", "-config", cfg)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct{ Msg, GRPC string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "cognito-authz listening" {
				addr <- line.GRPC
			} else if !strings.Contains(sc.Text(), `"level":"INFO"`) {
				fmt.Fprintf(os.Stderr, "%s: %s\n", name, sc.Text())
			}
		}
	}()
	return waitListening(cmd, name, addr)
}

// startNoop re-executes this binary as the no-op server.
func startNoop(ctx context.Context) (*proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := pinned(ctx, 0, self, "-noop-server", "127.0.0.1:0")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				addr <- a
			}
		}
	}()
	return waitListening(cmd, "no-op", addr)
}

func waitListening(cmd *exec.Cmd, name string, addr <-chan string) (*proc, error) {
	select {
	case a := <-addr:
		return &proc{name: name, cmd: cmd, addr: a}, nil
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		return nil, fmt.Errorf("%s did not start listening within 30s", name)
	}
}

func (p *proc) stop() {
	p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// clockTick is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100 on every Linux Go supports.
const clockTick = 10 * time.Millisecond

// cpuTime is the process's user plus system CPU time so far.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(procPath(pid, "stat"))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads utime and stime (fields 14 and 15) of a /proc/PID/stat line. The command name (field
// 2) may hold spaces, so fields are counted after its closing parenthesis.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("stat: no command name")
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, errors.New("stat: too few fields")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("stat: %w", err)
	}
	return time.Duration(u+s) * clockTick, nil
}

// peakRSS is the process's high-water resident set (VmHWM), in bytes.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(procPath(pid, "status"))
	if err != nil {
		return 0, err
	}
	return parseHWM(string(b))
}

func parseHWM(status string) (int64, error) {
	for line := range strings.Lines(status) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("status: no VmHWM")
}

// pinSelf moves every thread of this process to cpu; threads started later inherit it.
func pinSelf(cpu int) error {
	if _, err := exec.LookPath("taskset"); err != nil {
		return nil // not pinning anything
	}
	var set unix.CPUSet
	set.Set(cpu)
	tasks, err := filepath.Glob("/proc/self/task/*")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(filepath.Base(t))
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil {
			return fmt.Errorf("pin thread %d to CPU %d: %w", tid, cpu, err)
		}
	}
	return nil
}

// procPath is /proc/PID/name; pid 0 is this process.
func procPath(pid int, name string) string {
	if pid == 0 {
		return "/proc/self/" + name
	}
	return fmt.Sprintf("/proc/%d/%s", pid, name)
}
