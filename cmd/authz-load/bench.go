package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/cognito-authz/cognito-authz/pkg/config"
	"github.com/cognito-authz/cognito-authz/pkg/devissuer"
	"github.com/cognito-authz/cognito-authz/pkg/runtime"
)

// configFor is the server's config: one pool on the in-process dev issuer, everything on 127.0.0.1, the
// defaults otherwise (log level info, cache on), or the cache turned off.
func configFor(jwksURL string, cache bool) string {
	c := fmt.Sprintf(`server: {grpc_addr: "127.0.0.1:0", admin_addr: "127.0.0.1:0"}
pools:
  - name: load
    client_ids: [%s]
    token_use: access
    issuer: %s
    jwks_url: %s
`, devissuer.DefaultClientID, loadIssuer, jwksURL)
	if !cache {
		c += "cache: {max_entries: 0}\n"
	}
	return c
}

// checkConfig refuses what serve would: the file's shape and rules, and what building it checks (the
// browser: block's flow and session keys file).
func checkConfig(text string) error {
	c, err := config.Parse([]byte(text))
	if err != nil {
		return err
	}
	_, err = runtime.Build(c, runtime.Options{Logger: slog.New(slog.DiscardHandler)})
	return err
}

// scenario is one row pair of the table.
type scenario struct {
	name   string
	server *proc
	reqs   []*authv3.CheckRequest
	rate   int
	// allowAll: every Check must be allowed (every request carries a valid credential), or the run fails.
	allowAll bool
}

type row struct {
	scenario, server             string
	rps, cpu, p50, p99, allowPct float64
	rss                          int64
	vs, cpuVs                    string
}

func bench(ctx context.Context, o options, out io.Writer, log *slog.Logger) error {
	total := time.Now()
	info := func(msg string, args ...any) { log.Info(msg, args...) }
	key, toks, err := tokens(o.cacheDir, o.tokens+o.distinct, info)
	if err != nil {
		return err
	}
	iss, err := devissuer.New()
	if err != nil {
		return err
	}
	iss.SetKeys(key, key)
	ictx, stopIssuer := context.WithCancel(ctx)
	defer stopIssuer()
	if _, err := iss.Serve(ictx, "127.0.0.1:0"); err != nil {
		return err
	}

	dir, err := os.MkdirTemp("", "authz-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "cognito-authz")
	info("building cognito-authz", "bin", bin)
	build := exec.CommandContext(ctx, o.goCmd, "build", "-trimpath", "-tags", "vtprotobuf", "-o", bin, "./cmd/cognito-authz")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if err := build.Run(); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	keysFile, keys, err := writeSessionKey(dir)
	if err != nil {
		return err
	}
	procs := map[string]*proc{}
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	// The signed-in scenario has a server of its own, so the Bearer rows measure a config without browser
	// sign-in, as before it landed.
	const signedInServer = "cognito-authz (browser sign-in)"
	for _, c := range []struct {
		name string
		text string
	}{
		{"cognito-authz", configFor(iss.JWKSURL(), true)},
		{"cognito-authz (cache off)", configFor(iss.JWKSURL(), false)},
		{signedInServer, configFor(iss.JWKSURL(), true) + browserBlock(iss.DomainURL(), keysFile)},
	} {
		text := c.text
		if err := checkConfig(text); err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		path := filepath.Join(dir, strings.NewReplacer(" ", "", "(", "", ")", "").Replace(c.name)+".yaml")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			return err
		}
		p, err := startServer(ctx, c.name, bin, path)
		if err != nil {
			return err
		}
		procs[c.name] = p
	}
	noop, err := startNoop(ctx)
	if err != nil {
		return err
	}
	procs["no-op"] = noop
	cached, uncached, signedIn := procs["cognito-authz"], procs["cognito-authz (cache off)"], procs[signedInServer]

	conns := map[*proc]*grpc.ClientConn{}
	for _, p := range procs {
		c, err := dial(p.addr)
		if err != nil {
			return err
		}
		defer c.Close()
		conns[p] = c
	}
	valid := requests(toks[:o.tokens])
	// The same tokens in signed-in browsers' session cookies, sealed with the key the server reads.
	sessions, err := sessionRequests(keys, toks[:o.tokens], time.Now())
	if err != nil {
		return err
	}
	for p, req := range map[*proc]*authv3.CheckRequest{cached: valid[0], uncached: valid[0], signedIn: sessions[0]} {
		if err := waitAllows(ctx, conns[p], req); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	if err := pinSelf(1); err != nil {
		return err
	}

	mixed := slices.Clone(valid)
	for i := range mixed {
		if float64(i%100) < o.invalid*100 {
			mixed[i] = requests([]string{tamper(toks[i])})[0]
		}
	}
	// Warm every server and the caches: each request once, then a second of load.
	for _, w := range []struct {
		p    *proc
		sets [][]*authv3.CheckRequest
	}{{noop, [][]*authv3.CheckRequest{valid, mixed, sessions}}, {cached, [][]*authv3.CheckRequest{valid, mixed}},
		{uncached, [][]*authv3.CheckRequest{valid}}, {signedIn, [][]*authv3.CheckRequest{sessions}}} {
		for _, reqs := range w.sets {
			if _, err := drive(ctx, conns[w.p], w.p.cmd.Process.Pid, reqs, o.callers, time.Hour, 0, true); err != nil {
				return err
			}
		}
		if _, err := drive(ctx, conns[w.p], w.p.cmd.Process.Pid, w.sets[0], o.callers, time.Second, 0, false); err != nil {
			return err
		}
	}

	var rows []row
	scenarios := []scenario{
		{name: fmt.Sprintf("cached (%d tokens, repeated)", o.tokens), server: cached, reqs: valid, allowAll: true},
		{name: "every token new (cache off: every Check verifies)", server: uncached, reqs: valid, allowAll: true},
		{name: fmt.Sprintf("%.0f%% invalid signatures mixed in", o.invalid*100), server: cached, reqs: mixed},
		{name: fmt.Sprintf("fixed %d rps, cached", o.rate), server: cached, reqs: valid, rate: o.rate, allowAll: true},
		{name: fmt.Sprintf("signed-in session cookie (%d sessions)", len(sessions)), server: signedIn, reqs: sessions, allowAll: true},
	}
	var noopCachedRPS float64
	for _, sc := range scenarios {
		if !strings.Contains(sc.name, o.only) {
			continue
		}
		var base, got []result
		for r := range o.rounds {
			for _, p := range []*proc{noop, sc.server} {
				res, err := drive(ctx, conns[p], p.cmd.Process.Pid, sc.reqs, o.callers, o.duration, sc.rate, false)
				if err != nil {
					return err
				}
				if res.errs > 0 {
					return fmt.Errorf("%s on %s: %d of %d Checks failed", sc.name, p.name, res.errs, res.n)
				}
				if sc.allowAll && res.allowed != res.n {
					return fmt.Errorf("%s on %s: %d of %d Checks allowed, want all", sc.name, p.name, res.allowed, res.n)
				}
				if p == noop {
					base = append(base, res)
				} else {
					got = append(got, res)
				}
				info("drive", "scenario", sc.name, "round", r+1, "server", p.name, "rps", int(res.rps()),
					"cpu_us", fmt.Sprintf("%.1f", res.cpuPerCheck()), "p99", percentile(res.lat, 0.99))
			}
		}
		b, g := summarize(sc.name, noop, base), summarize(sc.name, sc.server, got)
		// The ratio is the median of each round's ratio: a round's two drives are seconds apart, so a
		// neighbour's load on the machine moves both, and the pair cancels most of it.
		ratios, cpuRatios := make([]float64, len(got)), make([]float64, len(got))
		for i := range got {
			if sc.rate == 0 {
				ratios[i] = got[i].rps() / base[i].rps()
			} else {
				ratios[i] = float64(percentile(got[i].lat, 0.99)) / float64(percentile(base[i].lat, 0.99))
			}
			cpuRatios[i] = got[i].cpuPerCheck() / max(base[i].cpuPerCheck(), 0.1)
		}
		slices.Sort(ratios)
		slices.Sort(cpuRatios)
		if sc.rate == 0 {
			g.vs = fmt.Sprintf("%.2f× rps", ratios[len(ratios)/2])
		} else {
			g.vs = fmt.Sprintf("%.2f× p99", ratios[len(ratios)/2])
		}
		g.cpuVs = fmt.Sprintf("%.2f×", cpuRatios[len(cpuRatios)/2])
		if sc.server == cached && sc.rate == 0 && noopCachedRPS == 0 {
			noopCachedRPS = b.rps
		}
		rows = append(rows, b, g)
	}
	if name := fmt.Sprintf("distinct (%d new tokens, each once, cache on)", o.distinct); o.distinct > 0 && strings.Contains(name, o.only) {
		distinct := toks[o.tokens:]
		info("distinct: each token once", "tokens", len(distinct))
		// Built as sent: 100 000 CheckRequests held at once would take hundreds of MiB of the load core's memory.
		get := func(i int64) *authv3.CheckRequest { return requests(distinct[i : i+1])[0] }
		res, err := driveFunc(ctx, conns[cached], cached.cmd.Process.Pid, get, int64(len(distinct)), o.callers, time.Hour, 0, true)
		if err != nil {
			return err
		}
		g := summarize(name, cached, []result{res})
		if noopCachedRPS > 0 {
			g.vs = fmt.Sprintf("%.2f× rps", g.rps/noopCachedRPS)
		}
		rows = append(rows, g)
	}
	printTable(out, rows)
	for _, p := range []*proc{cached, noop} {
		n, err := allowBytes(ctx, conns[p], valid[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "\nresponse bytes per allow, %s: %d", p.name, n)
	}
	fmt.Fprintln(out)
	fmt.Fprintf(out, "\nserver and no-op pinned to CPU 0, load to CPU 1 (taskset: %v); %d callers on one HTTP/2 connection; %d rounds × %s, medians; total %s\n",
		hasTaskset(), o.callers, o.rounds, o.duration, time.Since(total).Round(time.Second))
	return nil
}

// waitAllows sends req until the server allows it: its keys are loaded.
func waitAllows(ctx context.Context, conn *grpc.ClientConn, req *authv3.CheckRequest) error {
	client := authv3.NewAuthorizationClient(conn)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Check(ctx, req)
		if err == nil && codes.Code(resp.GetStatus().GetCode()) == codes.OK {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not allowing a valid token after 30s: %v %v", resp.GetStatus(), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// allowBytes is the size on the wire of the server's answer to req, an allow.
func allowBytes(ctx context.Context, conn *grpc.ClientConn, req *authv3.CheckRequest) (int, error) {
	resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, req)
	if err != nil {
		return 0, err
	}
	if codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		return 0, fmt.Errorf("allowBytes: not an allow: %v", resp.GetStatus())
	}
	return proto.Size(resp), nil
}

func hasTaskset() bool { _, err := exec.LookPath("taskset"); return err == nil }

// summarize takes the median of each figure over the rounds.
func summarize(name string, p *proc, rs []result) row {
	med := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	rss, _ := peakRSS(p.cmd.Process.Pid)
	return row{
		scenario: name, server: p.name, rss: rss,
		rps:      med(result.rps),
		cpu:      med(result.cpuPerCheck),
		p50:      med(func(r result) float64 { return float64(percentile(r.lat, 0.50).Microseconds()) }),
		p99:      med(func(r result) float64 { return float64(percentile(r.lat, 0.99).Microseconds()) }),
		allowPct: med(func(r result) float64 { return 100 * float64(r.allowed) / float64(max(r.n, 1)) }),
	}
}

func printTable(out io.Writer, rows []row) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	fmt.Fprintln(tw, "scenario\tserver\trps\tvs no-op\tCPU µs/Check\tCPU vs no-op\tp50 µs\tp99 µs\tallowed\tpeak RSS MiB\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%.1f\t%s\t%.0f\t%.0f\t%.0f%%\t%.1f\t\n", r.scenario, r.server, r.rps, r.vs, r.cpu,
			r.cpuVs, r.p50, r.p99, r.allowPct, float64(r.rss)/(1<<20))
	}
	tw.Flush()
}
