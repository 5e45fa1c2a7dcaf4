package tunnel_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/exo-in-go/exo/pkg/platform/agentkube"
	"github.com/exo-in-go/exo/pkg/platform/store"
	"github.com/exo-in-go/exo/test/framework"
	"github.com/exo-in-go/exo/test/ports"
)

// managerNamespace holds the manager's leader Lease and certificate Secret.
const managerNamespace = "agentkube-system"

// The platform's liveness windows for the process tests, short so that
// degraded and offline are observable within the test's time budget.
const (
	procHeartbeat     = 200 * time.Millisecond
	procDegradedAfter = 2 * time.Second
	procOfflineAfter  = 5 * time.Second
)

var (
	procBinOnce sync.Once
	procBinDir  string
	procBinErr  error
)

// processBinaries builds exo-app and agentkube-manager once per test binary
// into the user cache (like the Kubernetes binaries), in a folder per
// checkout that each run replaces, so no run leaves a copy of its own
// behind; the Go build cache makes the rebuild quick. The binaries are built
// aside and renamed into place, so a concurrent run of the same checkout
// never executes a half-written file.
func processBinaries(t *testing.T) string {
	t.Helper()
	procBinOnce.Do(func() { procBinDir, procBinErr = buildProcessBinaries() })
	if procBinErr != nil {
		t.Fatal(procBinErr)
	}
	return procBinDir
}

func buildProcessBinaries() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	root := framework.RepoRoot()
	sum := sha256.Sum256([]byte(root))
	dir := filepath.Join(cache, "exo-in-go", "test-tunnel-bin", hex.EncodeToString(sum[:6]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(dir, ".build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("go", "build", "-o", tmp+string(filepath.Separator), "./cmd/exo-app", "./cmd/agentkube-manager")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	for _, name := range []string{"exo-app", "agentkube-manager"} {
		if err := os.Rename(filepath.Join(tmp, name), filepath.Join(dir, name)); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// child is a process started by a test. Like hack/local-up's children it
// has its own process group and dies with the test binary (Pdeathsig), so
// a crashed or killed test leaves nothing running.
type child struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startChild(t *testing.T, name string, env []string, path string, args ...string) *child {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...) // later entries win over the inherited ones
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	c := &child{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		f.Close()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.stop(15 * time.Second)
		if t.Failed() {
			c.dumpLog(t, 40)
		}
	})
	return c
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// signal sends sig to the process itself (not its group).
func (c *child) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(c.pid(), sig); err != nil {
		t.Fatalf("%s %s: %v", sig, c.name, err)
	}
}

// exited reports an early exit as an error.
func (c *child) exited() error {
	select {
	case <-c.done:
		return fmt.Errorf("%s exited: %v (log %s)", c.name, c.err, c.log)
	default:
		return nil
	}
}

// waitKilled waits for the process to be reaped and checks that sig ended it.
func (c *child) waitKilled(t *testing.T, sig syscall.Signal, d time.Duration) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(d):
		t.Fatalf("%s did not exit within %s of %s", c.name, d, sig)
	}
	ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != sig {
		t.Fatalf("%s ended with %v, want %s", c.name, c.cmd.ProcessState, sig)
	}
}

// stop sends SIGTERM to the process group (after SIGCONT, in case a test
// left it stopped), SIGKILL after grace, and waits. A process that already
// ended (killed by the test) is left alone: its id may be reused.
func (c *child) stop(grace time.Duration) {
	select {
	case <-c.done:
		return
	default:
	}
	pgid := -c.pid()
	_ = syscall.Kill(pgid, syscall.SIGCONT)
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-c.done
	}
	// Whatever the process left in its group goes too.
	_ = syscall.Kill(pgid, syscall.SIGKILL)
}

func (c *child) dumpLog(t *testing.T, lines int) {
	f, err := os.Open(c.log)
	if err != nil {
		return
	}
	defer f.Close()
	var tail []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		tail = append(tail, sc.Text())
		if len(tail) > lines {
			tail = tail[1:]
		}
	}
	t.Logf("last lines of %s (pid %d):\n%s", c.name, c.pid(), strings.Join(tail, "\n"))
}

// waitHTTP polls url until it answers 200, the process exits, or d passes.
func (c *child) waitHTTP(url string, d time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(d)
	for {
		if err := c.exited(); err != nil {
			return err
		}
		if res, err := hc.Get(url); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %s not ready after %s", c.name, url, d)
		}
		time.Sleep(100 * time.Millisecond) // polling readiness
	}
}

// exoApp is exo-app as a separate process on a SQLite file, restartable on
// the same port and database.
type exoApp struct {
	t    *testing.T
	bin  string
	addr string
	env  []string
	proc *child
	runs int
}

func startExoApp(t *testing.T, bin string) *exoApp {
	t.Helper()
	dir := t.TempDir()
	port := ports.Free(t)
	a := &exoApp{t: t, bin: bin, addr: fmt.Sprintf("127.0.0.1:%d", port)}
	a.env = []string{
		fmt.Sprintf("EXO_PORT=%d", port),
		"EXO_BASE_URL=http://" + a.addr,
		"EXO_DATABASE_DSN=" + filepath.Join(dir, "exo.db"),
		"EXO_CAST_STORAGE_DIR=" + filepath.Join(dir, "casts"),
		"EXO_DEV_MODE=true",
		// Fixed, so user sessions survive a restart.
		"EXO_JWT_SECRET=process-test-secret-process-test-secret",
		"EXO_ENCRYPTION_KEY=" + strings.Repeat("k", 32),
		"EXO_LOGIN_RATE_PER_MINUTE=100000",
		"EXO_TUNNEL_HEARTBEAT_INTERVAL=" + procHeartbeat.String(),
		"EXO_TUNNEL_DEGRADED_AFTER=" + procDegradedAfter.String(),
		"EXO_TUNNEL_OFFLINE_AFTER=" + procOfflineAfter.String(),
		"EXO_TUNNEL_GRACE_WINDOW=1ms",
	}
	a.start()
	return a
}

// start runs exo-app and waits for /api/health. The port of a process
// killed a moment ago may not be free yet, so an early exit is retried.
func (a *exoApp) start() {
	a.t.Helper()
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		a.runs++
		a.proc = startChild(a.t, fmt.Sprintf("exo-app-%d", a.runs), a.env, filepath.Join(a.bin, "exo-app"))
		if err = a.proc.waitHTTP(a.url()+"/api/health", 2*time.Minute); err == nil {
			return
		}
		if a.proc.exited() == nil {
			break // running but not healthy: no point retrying
		}
		time.Sleep(100 * time.Millisecond) // let the kernel release the port
	}
	a.t.Fatal(err)
}

// kill9 kills exo-app with SIGKILL: no shutdown, no close frames.
func (a *exoApp) kill9() {
	a.t.Helper()
	a.proc.signal(a.t, syscall.SIGKILL)
	a.proc.waitKilled(a.t, syscall.SIGKILL, 10*time.Second)
}

func (a *exoApp) url() string { return "http://" + a.addr }

// api is a client of the process's dashboard API. The harness's *platform
// is reused for its HTTP helpers (do, deployment, and so waitConverged),
// which only need the address; the in-process server fields stay empty.
func (a *exoApp) api() *platform { return &platform{t: a.t, addr: a.addr} }

// managerProc is agentkube-manager as a separate process in managed mode.
type managerProc struct {
	*child
	clusterID string
	probe     string
}

type managerOpts struct {
	clusterID string
	// leaseID names the leader Lease; each test has its own so that no
	// Lease left by another test delays its election.
	leaseID                                   string
	leaseDuration, renewDeadline, retryPeriod time.Duration
}

// startManagerProc runs agentkube-manager against the test cluster with the
// admin kubeconfig and waits until it is ready (/readyz: informers synced,
// endpoints serving). A standby is ready too: informers warm up before
// leadership.
func startManagerProc(t *testing.T, bin, baseURL, token string, o managerOpts) *managerProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cluster.EnsureNamespace(ctx, managerNamespace); err != nil {
		t.Fatal(err)
	}
	probe := fmt.Sprintf("127.0.0.1:%d", ports.Free(t))
	kubeconfig := cluster.KubeconfigPath
	args := []string{
		"--kubeconfig", kubeconfig,
		"--authentication-kubeconfig", kubeconfig,
		"--authorization-kubeconfig", kubeconfig,
		"--namespace", managerNamespace,
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", ports.Free(t)),
		"--health-probe-bind-address=" + probe,
		"--webhook-host=127.0.0.1", fmt.Sprintf("--webhook-port=%d", ports.Free(t)),
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", ports.Free(t)),
		"--cert-extra-hosts=localhost,127.0.0.1",
		"--leader-elect=true",
		"--leader-election-id=" + o.leaseID,
		"--leader-elect-lease-duration=" + o.leaseDuration.String(),
		"--leader-elect-renew-deadline=" + o.renewDeadline.String(),
		"--leader-elect-retry-period=" + o.retryPeriod.String(),
	}
	env := []string{
		"AGENTKUBE_MANAGED=true",
		"AGENTKUBE_BASE_URL=" + baseURL,
		"AGENTKUBE_AUTH_TOKEN=" + token,
		"AGENTKUBE_CLUSTER_ID=" + o.clusterID,
	}
	m := &managerProc{
		child:     startChild(t, "agentkube-manager-"+o.clusterID, env, filepath.Join(bin, "agentkube-manager"), args...),
		clusterID: o.clusterID,
		probe:     probe,
	}
	if err := m.waitHTTP("http://"+probe+"/readyz", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	return m
}

// leaseHolder is the holderIdentity of the manager's leader Lease ("" when
// there is none yet).
func leaseHolder(ctx context.Context, leaseID string) (string, error) {
	l, err := cluster.Kube.CoordinationV1().Leases(managerNamespace).Get(ctx, leaseID, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if l.Spec.HolderIdentity == nil {
		return "", nil
	}
	return *l.Spec.HolderIdentity, nil
}

// clusterView reads the platform's view of a deployment.
func clusterView(p *platform, jwt, id string) (agentkube.ClusterView, error) {
	var v agentkube.ClusterView
	if code := p.do("GET", "/api/v1/deployments/"+id+"/cluster", jwt, nil, &v); code != http.StatusOK {
		return v, fmt.Errorf("GET cluster view: HTTP %d", code)
	}
	return v, nil
}

// getDeployment reads a deployment's stored status and last heartbeat.
func getDeployment(p *platform, jwt, id string) (store.Deployment, error) {
	var d store.Deployment
	if code := p.do("GET", "/api/v1/deployments/"+id, jwt, nil, &d); code != http.StatusOK {
		return d, fmt.Errorf("GET deployment: HTTP %d", code)
	}
	return d, nil
}

// waitConnected waits until the view is served by the operator that
// reports clusterID, connected and synced.
func waitConnected(t *testing.T, p *platform, jwt, id, clusterID string, d time.Duration) agentkube.ClusterView {
	t.Helper()
	var v agentkube.ClusterView
	eventually(t, d, func() error {
		var err error
		if v, err = clusterView(p, jwt, id); err != nil {
			return err
		}
		if !v.Connected || !v.Synced || v.ClusterID != clusterID {
			return fmt.Errorf("view: status %q connected %v synced %v cluster %q, want %q connected and synced",
				v.Status, v.Connected, v.Synced, v.ClusterID, clusterID)
		}
		return nil
	})
	return v
}
