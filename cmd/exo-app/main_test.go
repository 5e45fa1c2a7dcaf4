package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/exo-in-go/exo/pkg/platform/platformtest"
	"github.com/exo-in-go/exo/test/ports"
)

// The test binary doubles as the exo-app binary: with EXO_APP_TEST_MAIN=1 it
// runs main(). Tests and benchmarks start it as a separate process, so the
// load generator (this process) and the server never share a runtime.
func TestMain(m *testing.M) {
	if os.Getenv("EXO_APP_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type proc struct {
	cmd    *exec.Cmd
	url    string
	stderr *bytes.Buffer
	done   chan error
}

func start(t testing.TB, extraEnv ...string) *proc {
	t.Helper()
	port := ports.Free(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		"EXO_APP_TEST_MAIN=1",
		fmt.Sprintf("EXO_PORT=%d", port),
		fmt.Sprintf("EXO_BASE_URL=http://127.0.0.1:%d", port),
		"EXO_LOG_LEVEL=warn",
		"EXO_CAST_STORAGE_DIR="+t.TempDir(),
		"EXO_LOGIN_RATE_PER_MINUTE=1000",
		"EXO_AUTH_RATE_PER_MINUTE=100000",
		"EXO_DEV_MODE=true",
	)
	cmd.Env = append(cmd.Env, extraEnv...)
	p := &proc{cmd: cmd, url: fmt.Sprintf("http://127.0.0.1:%d", port), stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

// waitHealthy polls /api/health until the child answers or exits.
func (p *proc) waitHealthy(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for delay := 10 * time.Millisecond; time.Now().Before(deadline); delay = min(delay*2, 500*time.Millisecond) {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("exo-app exited early: %v\n%s", err, p.stderr)
		default:
		}
		res, err := http.Get(p.url + "/api/health")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		time.Sleep(delay) // polling a condition with backoff, not synchronisation by sleep
	}
	t.Fatalf("exo-app not healthy in time:\n%s", p.stderr)
}

func (p *proc) stop(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Fatalf("exo-app exit after SIGTERM: %v\n%s", err, p.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("exo-app did not stop after SIGTERM")
	}
}

func TestBadConfigStopsStartup(t *testing.T) {
	for _, v := range []string{"EXO_PORT=not-a-port", "EXO_JWT_EXPIRY=soon", "EXO_ENCRYPTION_KEY=short"} {
		p := start(t, v, "EXO_DATABASE_DSN="+t.TempDir()+"/x.db")
		var err error
		select {
		case err = <-p.done:
			p.done <- err
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: exo-app did not exit", v)
		}
		name, _, _ := strings.Cut(v, "=")
		if err == nil || !strings.Contains(p.stderr.String(), name) {
			t.Fatalf("%s: exit %v, stderr does not name the variable:\n%s", v, err, p.stderr)
		}
	}
}

func TestServeAndGracefulShutdown(t *testing.T) {
	for _, backend := range platformtest.Backends {
		t.Run(backend, func(t *testing.T) {
			p := start(t, "EXO_DATABASE_DSN="+platformtest.DSN(t, backend))
			p.waitHealthy(t)
			tok := signup(t, p.url)
			res := get(t, p.url+"/api/v1/deployments", tok)
			if res != 200 {
				t.Fatalf("list deployments: %d", res)
			}
			p.stop(t)
		})
	}
}

func signup(t testing.TB, base string) string {
	t.Helper()
	body := `{"email":"bench@example.com","password":"bench password","tenant_name":"Bench"}`
	res, err := http.Post(base+"/api/v1/auth/signup", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct{ Token string }
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != 201 {
		t.Fatalf("signup: %d %v", res.StatusCode, err)
	}
	return out.Token
}

func get(t testing.TB, url, tok string) int {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// BenchmarkListDeployments drives authenticated GET /api/v1/deployments
// against an exo-app running in another process and reports requests/second.
func BenchmarkListDeploymentsSQLite(b *testing.B)   { benchList(b, "sqlite") }
func BenchmarkListDeploymentsPostgres(b *testing.B) { benchList(b, "postgres") }

func benchList(b *testing.B, backend string) {
	p := start(b, "EXO_DATABASE_DSN="+platformtest.DSN(b, backend))
	p.waitHealthy(b)
	tok := signup(b, p.url)
	for i := range 10 {
		req, _ := http.NewRequest("POST", p.url+"/api/v1/deployments", strings.NewReader(fmt.Sprintf(`{"name":"cluster-%02d"}`, i)))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != 201 {
			b.Fatalf("create deployment: %v %v", res, err)
		}
		res.Body.Close()
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}, Timeout: 30 * time.Second}
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", p.url+"/api/v1/deployments", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		for pb.Next() {
			res, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				b.Errorf("status %d", res.StatusCode)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	p.stop(b)
}
