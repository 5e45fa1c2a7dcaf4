package framework

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Controllers configures the kube-controller-manager and kube-scheduler that Start runs
// when Options.Controllers is set: with them, garbage collection, namespace deletion,
// ClusterRole aggregation, ServiceAccounts, kube-root-ca.crt, node lifecycle and
// scheduling happen as in a cluster.
type Controllers struct {
	// ControllerManagerOut and SchedulerOut receive each component's output; discarded
	// when nil.
	ControllerManagerOut, SchedulerOut io.Writer
}

// component is kube-controller-manager or kube-scheduler: a child in its own process
// group that dies with this process (Pdeathsig), so not even a killed test leaves one
// acting on a cluster whose kube-apiserver is gone; Cluster.Stop stops it first.
type component struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (c *Cluster) startComponent(name string, out io.Writer, args ...string) error {
	cmd := exec.Command(filepath.Join(c.BinDir, name), args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	p := &component{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	c.components = append(c.components, p)
	return nil
}

// stopComponents ends every component, newest first: SIGTERM, SIGKILL after the grace
// period, and waits, so none is running when kube-apiserver stops.
func (c *Cluster) stopComponents(grace time.Duration) {
	for i := len(c.components) - 1; i >= 0; i-- {
		p := c.components[i]
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
	c.components = nil
}

// componentsExited reports a component that ended on its own.
func (c *Cluster) componentsExited() error {
	var errs []error
	for _, p := range c.components {
		select {
		case <-p.done:
			errs = append(errs, fmt.Errorf("%s exited: %v", p.name, p.err))
		default:
		}
	}
	return errors.Join(errs...)
}

// startControllers runs kube-controller-manager and kube-scheduler as their own users
// (system:kube-controller-manager, system:kube-scheduler), so kube-apiserver's bootstrap
// RBAC applies to them as in a cluster, and waits for the controller-manager to act.
func (c *Cluster) startControllers(ctx context.Context, opts *Controllers) error {
	// kube-root-ca.crt and legacy token Secrets carry the CA that signed kube-apiserver's
	// serving certificate, which is the one in the admin configuration.
	rootCA := filepath.Join(c.Dir, "pki", "kube-apiserver-ca.crt")
	if err := os.WriteFile(rootCA, c.Config.CAData, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", rootCA, err)
	}
	_, kcmKubeconfig, err := c.NewUser("system:kube-controller-manager")
	if err != nil {
		return err
	}
	_, schedulerKubeconfig, err := c.NewUser("system:kube-scheduler")
	if err != nil {
		return err
	}
	// envtest gives kube-apiserver sa-signer.key to sign ServiceAccount tokens (and its
	// certificate to verify them); the controller-manager signs legacy token Secrets with
	// the same key, so kube-apiserver accepts those too.
	saKey := filepath.Join(c.env.ControlPlane.GetAPIServer().CertDir, "sa-signer.key")
	if err := c.startComponent("kube-controller-manager", opts.ControllerManagerOut,
		"--kubeconfig="+kcmKubeconfig,
		// Each controller with its own ServiceAccount's token, as kubeadm runs it: the
		// bootstrap RBAC gives the controller-manager's own user little beyond minting
		// those tokens, and the webhook's garbage-collector exemption names the
		// collector's ServiceAccount.
		"--use-service-account-credentials=true",
		"--service-account-private-key-file="+saKey,
		"--root-ca-file="+rootCA,
		"--leader-elect=false",
		// No HTTPS endpoint: nothing scrapes it, and a fixed port would keep two
		// clusters from running side by side.
		"--secure-port=0",
	); err != nil {
		return err
	}
	if err := c.startComponent("kube-scheduler", opts.SchedulerOut,
		"--kubeconfig="+schedulerKubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
	); err != nil {
		return err
	}
	return c.waitForControllers(ctx)
}

// waitForControllers waits until the serviceaccount controller, running with a token
// the controller-manager requested for it, has created the default namespace's
// ServiceAccount: the controller-manager is up and its per-controller credentials work.
// The scheduler has no such sign (it serves nothing); a pod created before its caches
// have synced is scheduled once they have, so it is only checked to still be running.
func (c *Cluster) waitForControllers(ctx context.Context) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := c.componentsExited(); err != nil {
			return false, err
		}
		_, last = c.Kube.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(last) {
			return false, nil
		}
		return last == nil, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for kube-controller-manager to create ServiceAccount default/default (last: %v): %w", last, err)
	}
	return nil
}

// ProcessesMentioning lists the live processes (not zombies) whose command line contains
// one of substrings, as "pid: command line". Tests use it to check that what they
// stopped has ended: every process a cluster starts names a file under its Dir.
func ProcessesMentioning(substrings ...string) []string {
	var found []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue
		}
		stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		// The state follows the parenthesised command name, which may hold spaces.
		if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && strings.HasPrefix(string(stat[i:]), ") Z") {
			continue
		}
		line := strings.ReplaceAll(string(cmdline), "\x00", " ")
		for _, s := range substrings {
			if strings.Contains(line, s) {
				found = append(found, e.Name()+": "+line)
				break
			}
		}
	}
	return found
}
