package main

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cognito-authz/cognito-authz/pkg/extauthz"
)

// result is one drive of one server.
type result struct {
	n, allowed, errs int
	elapsed          time.Duration
	cpu              time.Duration // server CPU over the drive
	lat              []time.Duration
}

func (r result) rps() float64 { return float64(r.n) / r.elapsed.Seconds() }

// cpuPerCheck is the server's CPU time per Check, in microseconds.
func (r result) cpuPerCheck() float64 {
	if r.n == 0 {
		return 0
	}
	return float64(r.cpu.Microseconds()) / float64(r.n)
}

// percentile of sorted latencies, p in [0, 1].
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted)-1) + 0.5)
	return sorted[i]
}

// requests builds the CheckRequest Envoy would send for a GET with each token (an empty token: none).
func requests(toks []string) []*authv3.CheckRequest {
	out := make([]*authv3.CheckRequest, len(toks))
	for i, t := range toks {
		h := map[string]string{
			":authority": "api.example.com", ":method": "GET", ":path": "/api/orders?page=2", ":scheme": "https",
			"accept": "application/json", "user-agent": "Mozilla/5.0 (X11; Linux x86_64) load/1.0",
			"x-forwarded-proto": "https", "x-request-id": "6f1e6a0c-4b8e-4c1b-9e0f-aaaaaaaaaaaa",
		}
		if t != "" {
			h["authorization"] = "Bearer " + t
		}
		out[i] = extauthz.Probe{Method: "GET", Host: "api.example.com", Path: "/api/orders?page=2", Headers: h}.CheckRequest()
	}
	return out
}

// dial opens one HTTP/2 connection to addr.
func dial(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// drive sends reqs round-robin from callers goroutines for d, as fast as answers come (rate 0), or at rate
// requests per second in all with latency measured from each request's scheduled time (so a stall is
// charged to every request it delays). once stops after every request was sent once.
func drive(ctx context.Context, conn *grpc.ClientConn, pid int, reqs []*authv3.CheckRequest, callers int, d time.Duration, rate int, once bool) (result, error) {
	return driveFunc(ctx, conn, pid, func(i int64) *authv3.CheckRequest { return reqs[i%int64(len(reqs))] }, int64(len(reqs)), callers, d, rate, once)
}

// driveFunc is drive over requests made by get, for sets too large to hold (n: how many there are).
func driveFunc(ctx context.Context, conn *grpc.ClientConn, pid int, get func(int64) *authv3.CheckRequest, n int64, callers int, d time.Duration, rate int, once bool) (result, error) {
	client := authv3.NewAuthorizationClient(conn)
	var next atomic.Int64
	lats := make([][]time.Duration, callers)
	allowed := make([]int, callers)
	errs := make([]int, callers)
	cpu0, err := cpuTime(pid)
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range callers {
		wg.Go(func() {
			var period, offset time.Duration
			if rate > 0 {
				period = time.Duration(int64(time.Second) * int64(callers) / int64(rate))
				offset = period * time.Duration(w) / time.Duration(callers)
			}
			lat := make([]time.Duration, 0, 1<<14)
			for k := 0; ; k++ {
				var sched time.Time
				if rate > 0 {
					sched = start.Add(offset + time.Duration(k)*period)
					if sched.After(deadline) {
						break
					}
					time.Sleep(time.Until(sched))
				} else {
					sched = time.Now()
					if !once && sched.After(deadline) {
						break
					}
				}
				i := next.Add(1) - 1
				if once && i >= n {
					break
				}
				resp, err := client.Check(ctx, get(i))
				lat = append(lat, time.Since(sched))
				switch {
				case err != nil:
					errs[w]++
				case codes.Code(resp.GetStatus().GetCode()) == codes.OK:
					allowed[w]++
				}
			}
			lats[w] = lat
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, err := cpuTime(pid)
	if err != nil {
		return result{}, err
	}
	r := result{elapsed: elapsed, cpu: cpu1 - cpu0}
	for w := range callers {
		r.lat = append(r.lat, lats[w]...)
		r.allowed += allowed[w]
		r.errs += errs[w]
	}
	r.n = len(r.lat)
	slices.Sort(r.lat)
	return r, ctx.Err()
}
