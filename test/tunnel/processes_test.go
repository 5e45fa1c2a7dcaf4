package tunnel_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/exo-in-go/exo/pkg/platform/agentkube"
	"github.com/exo-in-go/exo/pkg/platform/store"
	"github.com/exo-in-go/exo/test/poll"
	"github.com/exo-in-go/exo/test/ports"
	"github.com/exo-in-go/exo/test/procs"
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

// processBinaries builds exo-app and agentkube-manager once per test binary.
func processBinaries(t *testing.T) string {
	t.Helper()
	return procs.Build(t, "./cmd/exo-app", "./cmd/agentkube-manager")
}

// exoApp is exo-app as a separate process on a SQLite file, restartable on
// the same port and database.
type exoApp struct {
	t    *testing.T
	bin  string
	addr string
	env  []string
	proc *procs.Child
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
		"EXO_AUTH_RATE_PER_MINUTE=100000",
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
		a.proc = procs.Start(a.t, fmt.Sprintf("exo-app-%d", a.runs), a.env, filepath.Join(a.bin, "exo-app"))
		if err = a.proc.WaitHTTP(a.url()+"/api/health", 2*time.Minute); err == nil {
			return
		}
		if a.proc.Exited() == nil {
			break // running but not healthy: no point retrying
		}
		time.Sleep(100 * time.Millisecond) // let the kernel release the port
	}
	a.t.Fatal(err)
}

// kill9 kills exo-app with SIGKILL: no shutdown, no close frames.
func (a *exoApp) kill9() {
	a.t.Helper()
	a.proc.Signal(a.t, syscall.SIGKILL)
	a.proc.WaitKilled(a.t, syscall.SIGKILL, 10*time.Second)
}

func (a *exoApp) url() string { return "http://" + a.addr }

// api is a client of the process's dashboard API. The harness's *platform
// is reused for its HTTP helpers (do, deployment, and so waitConverged),
// which only need the address; the in-process server fields stay empty.
func (a *exoApp) api() *platform { return &platform{t: a.t, addr: a.addr} }

// managerProc is agentkube-manager as a separate process in managed mode.
type managerProc struct {
	*procs.Child
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
		Child:     procs.Start(t, "agentkube-manager-"+o.clusterID, env, filepath.Join(bin, "agentkube-manager"), args...),
		clusterID: o.clusterID,
		probe:     probe,
	}
	if err := m.WaitHTTP("http://"+probe+"/readyz", 2*time.Minute); err != nil {
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
	poll.Until(t, d, func() error {
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
