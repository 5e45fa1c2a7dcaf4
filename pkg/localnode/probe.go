//go:build linux

package localnode

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/exo-in-go/exo/pkg/localnode/internal/shim"
)

// runProbes drives the startup, liveness and readiness probes of one instance
// with the kubelet's semantics: nothing else runs until the startup probe
// succeeds; a container without a readiness probe is ready once started; a
// failed startup or liveness probe restarts the container.
func (c *containerRuntime) runProbes(ctx context.Context, inst *instance, spec *corev1.Container) {
	if spec.StartupProbe != nil {
		if !c.probeLoop(ctx, inst, spec, "Startup", spec.StartupProbe, func(ok bool) bool {
			if ok {
				c.p.mu.Lock()
				c.started = true
				c.p.mu.Unlock()
				c.startedOnce.Do(func() { close(c.startedCh) })
				c.p.changed()
				return false // done
			}
			return true
		}) {
			return
		}
	}
	if spec.LivenessProbe != nil {
		go c.probeLoop(ctx, inst, spec, "Liveness", spec.LivenessProbe, func(bool) bool { return true })
	}
	if spec.ReadinessProbe == nil {
		c.setReady(true)
		return
	}
	c.probeLoop(ctx, inst, spec, "Readiness", spec.ReadinessProbe, func(ok bool) bool {
		c.setReady(ok)
		return true
	})
}

func (c *containerRuntime) setReady(ok bool) {
	c.p.mu.Lock()
	changed := c.ready != ok
	c.ready = ok
	c.p.mu.Unlock()
	if changed {
		c.p.changed()
	}
}

// probeLoop probes every period and calls result with the probe's verdict once
// the success or failure threshold is crossed; result returns whether to go
// on. A failure beyond the threshold of a startup or liveness probe kills the
// instance. It returns false when it stopped because of ctx or a kill.
func (c *containerRuntime) probeLoop(ctx context.Context, inst *instance, spec *corev1.Container, kind string, pr *corev1.Probe, result func(bool) bool) bool {
	period := time.Duration(max(pr.PeriodSeconds, 1)) * time.Second
	timeout := time.Duration(max(pr.TimeoutSeconds, 1)) * time.Second
	successThreshold := int(max(pr.SuccessThreshold, 1))
	failureThreshold := int(max(pr.FailureThreshold, 1))
	if pr.InitialDelaySeconds > 0 && !sleepCtx(ctx, time.Duration(pr.InitialDelaySeconds)*time.Second) {
		return false
	}
	successes, failures := 0, 0
	for {
		ok, msg := c.probeOnce(ctx, inst, spec, pr, timeout)
		if ctx.Err() != nil {
			return false
		}
		if ok {
			successes, failures = successes+1, 0
			if successes >= successThreshold {
				if !result(true) {
					return true
				}
			}
		} else {
			successes, failures = 0, failures+1
			c.p.n.log.Debug("probe failed", "pod", c.p.key, "container", c.name, "probe", kind, "failures", failures, "msg", msg)
			c.event(corev1.EventTypeWarning, "Unhealthy", kind+" probe failed: "+msg)
			if failures >= failureThreshold {
				if kind != "Readiness" {
					c.event(corev1.EventTypeNormal, "Killing", fmt.Sprintf("Container %s failed %s probe, will be restarted", c.name, strings.ToLower(kind)))
					c.killInstance()
					return false
				}
				result(false)
			}
		}
		if !sleepCtx(ctx, period) {
			return false
		}
	}
}

func (c *containerRuntime) probeOnce(ctx context.Context, inst *instance, spec *corev1.Container, pr *corev1.Probe, timeout time.Duration) (bool, string) {
	if pr.Exec != nil {
		// The timeout counts from the command's start, not the supervisor's.
		code, out, err := runCaptured(ctx, inst, pr.Exec.Command, timeout)
		if err != nil {
			return false, err.Error()
		}
		if code != 0 {
			return false, fmt.Sprintf("command %q exited with %d: %s", strings.Join(pr.Exec.Command, " "), code, strings.TrimSpace(out))
		}
		return true, ""
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	podIP := c.p.ipString()
	switch {
	case pr.HTTPGet != nil:
		h := pr.HTTPGet
		port, err := resolvePort(h.Port, spec)
		if err != nil {
			return false, err.Error()
		}
		host := h.Host
		if host == "" {
			host = podIP
		}
		scheme := strings.ToLower(string(h.Scheme))
		if scheme == "" {
			scheme = "http"
		}
		u := url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(port)), Path: h.Path}
		if i := strings.IndexByte(h.Path, '?'); i >= 0 {
			u.Path, u.RawQuery = h.Path[:i], h.Path[i+1:]
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return false, err.Error()
		}
		req.Header.Set("User-Agent", "kube-probe/localnode")
		for _, hh := range h.HTTPHeaders {
			if strings.EqualFold(hh.Name, "host") {
				req.Host = hh.Value
			} else {
				req.Header.Add(hh.Name, hh.Value)
			}
		}
		client := &http.Client{Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // as the kubelet does for probes
			DisableKeepAlives: true,
			Proxy:             nil,
		}}
		resp, err := client.Do(req)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return false, fmt.Sprintf("HTTP probe failed with statuscode: %d", resp.StatusCode)
		}
		return true, ""
	case pr.TCPSocket != nil:
		port, err := resolvePort(pr.TCPSocket.Port, spec)
		if err != nil {
			return false, err.Error()
		}
		host := pr.TCPSocket.Host
		if host == "" {
			host = podIP
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return false, err.Error()
		}
		conn.Close()
		return true, ""
	case pr.GRPC != nil:
		conn, err := grpc.NewClient(net.JoinHostPort(podIP, strconv.Itoa(int(pr.GRPC.Port))), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return false, err.Error()
		}
		defer conn.Close()
		svc := ""
		if pr.GRPC.Service != nil {
			svc = *pr.GRPC.Service
		}
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			return false, err.Error()
		}
		if resp.Status != healthpb.HealthCheckResponse_SERVING {
			return false, "service unhealthy (responded with " + resp.Status.String() + ")"
		}
		return true, ""
	}
	return false, "probe has no handler"
}

func resolvePort(p intstr.IntOrString, spec *corev1.Container) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, cp := range spec.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("couldn't find port %q in container %q", p.StrVal, spec.Name)
}

// runCaptured runs a command in the container's environment (exec probes) and
// returns its exit code and up to 10 KiB of output.
func runCaptured(ctx context.Context, inst *instance, command []string, timeout time.Duration) (int, string, error) {
	if len(command) == 0 {
		return 0, "", fmt.Errorf("empty command")
	}
	argv := make([]string, len(command))
	for i, s := range command {
		argv[i] = rewritePaths(s, inst.mounts, inst.rootfs)
	}
	bin, err := resolveExecutable(argv[0], inst.mapping, inst.env, &envContext{mounts: inst.mounts, rootfs: inst.rootfs})
	if err != nil {
		return 0, "", err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, "", err
	}
	proc, err := shim.Start(shim.Spec{Path: bin, Argv: argv, Env: inst.env.Environ(), Dir: inst.dir, Stdout: w, Stderr: w})
	w.Close()
	if err != nil {
		r.Close()
		return 0, "", err
	}
	outCh := make(chan string, 1)
	go func() {
		var buf bytes.Buffer
		b := make([]byte, 4096)
		for {
			n, err := r.Read(b)
			if buf.Len() < 10<<10 {
				buf.Write(b[:n])
			}
			if err != nil {
				break
			}
		}
		r.Close()
		outCh <- buf.String()
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-proc.Done():
	case <-timer.C:
		proc.Kill()
		<-proc.Done()
		<-outCh
		return 0, "", fmt.Errorf("command timed out after %s", timeout)
	case <-ctx.Done():
		proc.Kill()
		<-proc.Done()
		<-outCh
		return 0, "", ctx.Err()
	}
	out := <-outCh
	return proc.Result().ExitCode, out, nil
}
