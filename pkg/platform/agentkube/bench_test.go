package agentkube_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/exo-in-go/exo/pkg/platform/auth"
	"github.com/exo-in-go/exo/pkg/platform/store"
	"github.com/exo-in-go/exo/pkg/tunnel"
)

// BenchmarkOperatorConnections holds N simulated operators (default 2000,
// EXO_TUNNEL_BENCH_CONNS=10000 for the full figure) on one exo-app, each
// sending a heartbeat every second, and reports exo-app's memory per
// connection (Go heap + stacks) and its CPU while they heartbeat. The
// operators run in a child process (this test binary in client mode) so
// the figures are the server's alone. Run with -benchtime=1x.
func BenchmarkOperatorConnections(b *testing.B) {
	n := 2000
	if v := os.Getenv("EXO_TUNNEL_BENCH_CONNS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	e := newEnv(b, nil)
	tokens := make([]string, n)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	u := e.signup("bench@example.com")
	for i := range tokens {
		tok, hash, prefix, _ := auth.NewDeploymentToken()
		if _, err := e.store.CreateDeployment(ctx, u.TenantID, store.Deployment{Name: fmt.Sprintf("d%d", i), TokenPrefix: prefix}, hash); err != nil {
			b.Fatal(err)
		}
		tokens[i] = tok
	}
	tokFile := b.TempDir() + "/tokens"
	if err := os.WriteFile(tokFile, []byte(strings.Join(tokens, "\n")), 0o600); err != nil {
		b.Fatal(err)
	}

	base := memNow()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), "EXO_TUNNEL_BENCH_CHILD=1", "EXO_TUNNEL_BENCH_URL="+e.url, "EXO_TUNNEL_BENCH_TOKENS="+tokFile)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	start := time.Now()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "READY" {
		b.Fatalf("client process: %q %v", line, err)
	}
	connectTime := time.Since(start)

	b.ResetTimer()
	for range b.N {
		cpu0, wall0 := cpuTime(), time.Now()
		time.Sleep(5 * time.Second) // steady state: heartbeats only
		cpu := cpuTime() - cpu0
		b.ReportMetric(float64(cpu)/float64(time.Since(wall0))*100, "cpu-%")
	}
	b.StopTimer()
	perConn := (memNow() - base) / uint64(n)
	b.ReportMetric(float64(perConn)/1024, "KiB/conn")
	b.ReportMetric(float64(n), "conns")
	b.ReportMetric(connectTime.Seconds(), "connect-all-s")
	b.ReportMetric(0, "ns/op")
}

func memNow() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runBenchClients is the child process: it connects every token, answers
// welcome, heartbeats each second, prints READY once all are connected and
// exits when stdin closes.
func runBenchClients() {
	b, err := os.ReadFile(os.Getenv("EXO_TUNNEL_BENCH_TOKENS"))
	if err != nil {
		panic(err)
	}
	u, _ := tunnel.ConnectURL(os.Getenv("EXO_TUNNEL_BENCH_URL"))
	tokens := strings.Split(string(b), "\n")
	ctx, cancel := context.WithCancel(context.Background())
	var ready, all sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, tok := range tokens {
		ready.Add(1)
		all.Add(1)
		go func() {
			defer all.Done()
			sem <- struct{}{}
			// Like the operator: a busy platform (503) is retried with backoff.
			var ws *websocket.Conn
			var err error
			for attempt := range 20 {
				if ws, err = tunnel.Dial(ctx, u, tok, nil, 30*time.Second); err == nil {
					break
				}
				time.Sleep(time.Duration(rand.Int64N(int64(100*time.Millisecond) << min(attempt, 5))))
			}
			<-sem
			if err != nil {
				fmt.Fprintln(os.Stderr, "dial:", err)
				os.Exit(1)
			}
			welcome := make(chan struct{})
			c := tunnel.NewConn(ws, tunnel.Options{})
			go func() {
				_ = c.Send(ctx, tunnel.TypeHello, "h", tunnel.Hello{ClusterID: "bench"})
				select {
				case <-welcome:
					ready.Done()
				case <-c.Done():
					fmt.Fprintln(os.Stderr, "closed before welcome:", c.Err())
					os.Exit(1)
				}
				_ = c.Send(ctx, tunnel.TypeSnapshot, "", tunnel.Snapshot{Generation: 1, Final: true})
				t := time.NewTicker(time.Second)
				defer t.Stop()
				for seq := uint64(0); ; seq++ {
					select {
					case <-ctx.Done():
						return
					case <-t.C:
						_ = c.Send(ctx, tunnel.TypeHeartbeat, "", tunnel.Heartbeat{Seq: seq})
					}
				}
			}()
			var once sync.Once
			_ = c.Run(ctx, func(f tunnel.Frame) {
				if f.Type == tunnel.TypeWelcome {
					once.Do(func() { close(welcome) })
				}
			})
		}()
	}
	ready.Wait()
	fmt.Println("READY")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes stdin
	cancel()
	all.Wait()
	os.Exit(0)
}
