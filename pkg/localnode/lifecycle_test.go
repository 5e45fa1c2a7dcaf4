//go:build linux

package localnode_test

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/exo-in-go/exo/pkg/localnode"
	lt "github.com/exo-in-go/exo/pkg/localnode/localnodetest"
)

func testLogger() *slog.Logger {
	if os.Getenv("LOCALNODE_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestNodeRegistered(t *testing.T) {
	ctx := context.Background()
	n, err := cluster.Kube.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ready := false
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			ready = true
		}
	}
	if !ready {
		t.Errorf("node not Ready: %+v", n.Status.Conditions)
	}
	if len(n.Status.Addresses) == 0 || n.Status.Addresses[0].Type != corev1.NodeInternalIP || n.Status.Addresses[0].Address != "127.0.0.1" {
		t.Errorf("addresses %+v, want InternalIP 127.0.0.1", n.Status.Addresses)
	}
	if int(n.Status.DaemonEndpoints.KubeletEndpoint.Port) != node.Port() {
		t.Errorf("kubelet port %d, want %d", n.Status.DaemonEndpoints.KubeletEndpoint.Port, node.Port())
	}
	if n.Status.Capacity.Cpu().IsZero() || n.Status.Capacity.Memory().IsZero() || n.Status.Capacity.Pods().Value() != 110 {
		t.Errorf("capacity %v", n.Status.Capacity)
	}
	out, _, err := cluster.Kubectl(ctx, "", "get", "node", nodeName, "-o", "wide")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Ready") || !strings.Contains(out, "127.0.0.1") {
		t.Errorf("kubectl get node:\n%s", out)
	}
}

// TestShellPodRunsAndDeletionKillsProcesses: a shell-script pod becomes
// Running with a pod IP of its own; deleting it ends every process it started,
// including a background job that left the process group.
func TestShellPodRunsAndDeletionKillsProcesses(t *testing.T) {
	ns := cluster.CreateNamespace(t)
	pod := createPod(t, shellPod(ns, "sleeper", `echo started; sleep 3600 & setsid sleep 3601 & wait`))
	running := lt.WaitForPod(t, cluster, ns, pod.Name, 30*time.Second, lt.PodPhase(corev1.PodRunning))
	ip, err := netip.ParseAddr(running.Status.PodIP)
	if err != nil || !netip.MustParsePrefix(localnode.DefaultPodCIDR).Contains(ip) {
		t.Fatalf("pod IP %q not in %s", running.Status.PodIP, localnode.DefaultPodCIDR)
	}
	if running.Status.HostIP != "127.0.0.1" {
		t.Errorf("host IP %q", running.Status.HostIP)
	}
	lt.WaitForPod(t, cluster, ns, pod.Name, 10*time.Second, lt.PodReady)

	// sh, two sleeps and the shim.
	deadline := time.Now().Add(10 * time.Second)
	for len(lt.Processes(pod.UID)) < 4 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if pids := lt.Processes(pod.UID); len(pids) < 4 {
		t.Fatalf("want at least 4 processes for the pod, found %v", pids)
	}

	ctx := context.Background()
	if err := cluster.Kube.CoreV1().Pods(ns).Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The grace period is 3s; sh ignores nothing here, so it goes at SIGTERM
	// and the leftovers are killed with it.
	lt.WaitForNoProcesses(t, pod.UID, 10*time.Second)
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := cluster.Kube.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatal("pod object not removed after its processes ended")
	}
}

// TestGracePeriodThenKill: a process that ignores SIGTERM is killed when the
// grace period ends.
func TestGracePeriodThenKill(t *testing.T) {
	ns := cluster.CreateNamespace(t)
	pod := shellPod(ns, "stubborn", `trap '' TERM; echo up; while true; do sleep 1; done`)
	pod.Spec.TerminationGracePeriodSeconds = ptr.To[int64](2)
	pod = createPod(t, pod)
	lt.WaitForPod(t, cluster, ns, pod.Name, 30*time.Second, lt.PodReady)
	start := time.Now()
	if err := cluster.Kube.CoreV1().Pods(ns).Delete(context.Background(), pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	lt.WaitForNoProcesses(t, pod.UID, 15*time.Second)
	if took := time.Since(start); took < 1500*time.Millisecond {
		t.Errorf("process ignoring SIGTERM ended after %s, before the 2s grace period", took)
	}
}

func TestPodSucceededAndFailedWithExitCode(t *testing.T) {
	ns := cluster.CreateNamespace(t)
	ok := createPod(t, shellPod(ns, "ok", `echo done`))
	bad := createPod(t, shellPod(ns, "bad", `echo failing >&2; exit 3`))

	p := lt.WaitForPod(t, cluster, ns, ok.Name, 30*time.Second, lt.PodPhase(corev1.PodSucceeded))
	if term := terminated(p, "main"); term == nil || term.ExitCode != 0 || term.Reason != "Completed" {
		t.Errorf("ok: terminated %+v", term)
	}
	p = lt.WaitForPod(t, cluster, ns, bad.Name, 30*time.Second, lt.PodPhase(corev1.PodFailed))
	if term := terminated(p, "main"); term == nil || term.ExitCode != 3 || term.Reason != "Error" {
		t.Errorf("bad: terminated %+v", term)
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			t.Errorf("a failed pod is Ready")
		}
	}
	lt.WaitForNoProcesses(t, bad.UID, 5*time.Second)
}

// TestRestartPolicies: OnFailure restarts a failing container (with back-off)
// until it succeeds; Always restarts even a succeeding one and counts
// restarts.
func TestRestartPolicies(t *testing.T) {
	ns := cluster.CreateNamespace(t)
	// Fails on the first run, succeeds on the second: the emptyDir keeps a
	// marker across restarts.
	onFailure := shellPod(ns, "onfailure", `if [ -e /data/ran ]; then echo second; exit 0; fi; touch /data/ran; echo first; exit 1`)
	onFailure.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	onFailure.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	onFailure.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	onFailure = createPod(t, onFailure)

	always := shellPod(ns, "always", `echo run; sleep 0.2`)
	always.Spec.RestartPolicy = corev1.RestartPolicyAlways
	always = createPod(t, always)

	p := lt.WaitForPod(t, cluster, ns, onFailure.Name, 30*time.Second, lt.PodPhase(corev1.PodSucceeded))
	cs := containerStatus(p, "main")
	if cs.RestartCount != 1 {
		t.Errorf("onfailure: restartCount %d, want 1", cs.RestartCount)
	}
	if cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 1 {
		t.Errorf("onfailure: lastState %+v, want exit 1", cs.LastTerminationState)
	}
	out, _, err := cluster.Kubectl(context.Background(), "", "logs", "-n", ns, onFailure.Name, "--previous")
	if err != nil || out != "first\n" {
		t.Errorf("logs --previous = %q, %v", out, err)
	}
	out, _, err = cluster.Kubectl(context.Background(), "", "logs", "-n", ns, onFailure.Name)
	if err != nil || out != "second\n" {
		t.Errorf("logs = %q, %v", out, err)
	}

	p = lt.WaitForPod(t, cluster, ns, always.Name, 30*time.Second, func(p *corev1.Pod) bool {
		return containerStatus(p, "main").RestartCount >= 2
	})
	if p.Status.Phase != corev1.PodRunning {
		t.Errorf("always: phase %s, want Running", p.Status.Phase)
	}
	lt.WaitForPod(t, cluster, ns, always.Name, 30*time.Second, func(p *corev1.Pod) bool {
		w := containerStatus(p, "main").State.Waiting
		return w != nil && w.Reason == "CrashLoopBackOff"
	})
}

func TestUnmappedImageFailsPod(t *testing.T) {
	ns := cluster.CreateNamespace(t)
	pod := shellPod(ns, "unmapped", "true")
	pod.Spec.RestartPolicy = corev1.RestartPolicyAlways
	pod.Spec.Containers[0].Image = unmappedImage
	pod = createPod(t, pod)
	p := lt.WaitForPod(t, cluster, ns, pod.Name, 30*time.Second, lt.PodPhase(corev1.PodFailed))
	if p.Status.Reason != "ErrImagePull" || !strings.Contains(p.Status.Message, `no binary mapped for image "`+unmappedImage+`"`) {
		t.Errorf("reason %q message %q", p.Status.Reason, p.Status.Message)
	}
	w := containerStatus(p, "main").State.Waiting
	if w == nil || w.Reason != "ErrImagePull" {
		t.Errorf("container state %+v", containerStatus(p, "main").State)
	}
}

// TestReadinessProbes: httpGet, tcpSocket and exec readiness probes gate
// readiness, and readiness follows the probe both ways.
func TestReadinessProbes(t *testing.T) {
	ns := cluster.CreateNamespace(t)
	// Ready while /tmp/ready exists (the container's own /tmp).
	pod := shellPod(ns, "probed", `touch /tmp/ready; exec sleep 3600`)
	pod.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"test", "-e", "/tmp/ready"}}},
		PeriodSeconds: 1, FailureThreshold: 1, SuccessThreshold: 1, TimeoutSeconds: 2,
	}
	pod = createPod(t, pod)
	lt.WaitForPod(t, cluster, ns, pod.Name, 30*time.Second, lt.PodReady)
	if _, _, err := cluster.Kubectl(context.Background(), "", "exec", "-n", ns, pod.Name, "--", "rm", "/tmp/ready"); err != nil {
		t.Fatal(err)
	}
	lt.WaitForPod(t, cluster, ns, pod.Name, 30*time.Second, func(p *corev1.Pod) bool { return !lt.PodReady(p) && p.Status.Phase == corev1.PodRunning })

	// An HTTP server on the pod IP, probed by httpGet (named port) and
	// tcpSocket; it comes up after a delay, so the pod is Running before it
	// is Ready.
	web := shellPod(ns, "web", `sleep 2; exec python3 -m http.server --bind "$LOCALNODE_POD_IP" 8080`)
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("python3 not available for the HTTP probe")
	}
	web.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}
	web.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromString("http")}},
		PeriodSeconds: 1, FailureThreshold: 1, SuccessThreshold: 1, TimeoutSeconds: 1,
	}
	web.Spec.Containers[0].LivenessProbe = &corev1.Probe{
		ProbeHandler:        corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}},
		InitialDelaySeconds: 5, PeriodSeconds: 1, FailureThreshold: 3, TimeoutSeconds: 1,
	}
	web = createPod(t, web)
	p := lt.WaitForPod(t, cluster, ns, web.Name, 30*time.Second, lt.PodPhase(corev1.PodRunning))
	if lt.PodReady(p) {
		t.Errorf("pod Ready before its server listens")
	}
	lt.WaitForPod(t, cluster, ns, web.Name, 30*time.Second, lt.PodReady)
	time.Sleep(7 * time.Second) // the liveness probe has passed several times
	p, _ = cluster.Kube.CoreV1().Pods(ns).Get(context.Background(), web.Name, metav1.GetOptions{})
	if rc := containerStatus(p, "main").RestartCount; rc != 0 {
		t.Errorf("healthy container restarted %d times", rc)
	}
}

// TestLivenessProbeRestarts: a failing liveness probe restarts the container.
func TestLivenessProbeRestarts(t *testing.T) {
	ns := cluster.CreateNamespace(t)
	pod := shellPod(ns, "unhealthy", `exec sleep 3600`)
	pod.Spec.RestartPolicy = corev1.RestartPolicyAlways
	pod.Spec.Containers[0].LivenessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"false"}}},
		PeriodSeconds: 1, FailureThreshold: 2, TimeoutSeconds: 1,
	}
	pod = createPod(t, pod)
	p := lt.WaitForPod(t, cluster, ns, pod.Name, 40*time.Second, func(p *corev1.Pod) bool {
		return containerStatus(p, "main").RestartCount >= 1
	})
	last := containerStatus(p, "main").LastTerminationState.Terminated
	if last == nil || last.ExitCode != 143 {
		t.Errorf("last termination %+v, want SIGTERM (143)", last)
	}
}

// TestActiveDeadline fails a pod that runs too long.
func TestActiveDeadline(t *testing.T) {
	ns := cluster.CreateNamespace(t)
	pod := shellPod(ns, "deadline", `exec sleep 3600`)
	pod.Spec.ActiveDeadlineSeconds = ptr.To[int64](2)
	pod = createPod(t, pod)
	p := lt.WaitForPod(t, cluster, ns, pod.Name, 30*time.Second, lt.PodPhase(corev1.PodFailed))
	if p.Status.Reason != "DeadlineExceeded" {
		t.Errorf("reason %q", p.Status.Reason)
	}
	lt.WaitForNoProcesses(t, pod.UID, 10*time.Second)
}

// TestInitContainers run in order before the app container.
func TestInitContainers(t *testing.T) {
	ns := cluster.CreateNamespace(t)
	pod := shellPod(ns, "init", `cat /shared/order`)
	pod.Spec.Volumes = []corev1.Volume{{Name: "shared", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	mount := []corev1.VolumeMount{{Name: "shared", MountPath: "/shared"}}
	pod.Spec.Containers[0].VolumeMounts = mount
	pod.Spec.InitContainers = []corev1.Container{
		{Name: "one", Image: shellImage, Command: []string{"sh", "-c", "echo one >> /shared/order"}, VolumeMounts: mount},
		{Name: "two", Image: shellImage, Command: []string{"sh", "-c", "sleep 0.5; echo two >> /shared/order"}, VolumeMounts: mount},
	}
	pod = createPod(t, pod)
	p := lt.WaitForPod(t, cluster, ns, pod.Name, 30*time.Second, lt.PodPhase(corev1.PodSucceeded))
	for _, name := range []string{"one", "two"} {
		if term := terminated(p, name); term == nil || term.ExitCode != 0 {
			t.Errorf("init container %s: %+v", name, term)
		}
	}
	out, _, err := cluster.Kubectl(context.Background(), "", "logs", "-n", ns, pod.Name, "-c", "main")
	if err != nil || out != "one\ntwo\n" {
		t.Errorf("logs %q, %v", out, err)
	}
}

// TestBinderAndStopLeavesNoProcess: a node started with BindUnscheduledPods
// binds a pod without a node whose nodeSelector it matches (and not one it does
// not); when the node stops, Run returns only after every process of its pods
// has ended.
func TestBinderAndStopLeavesNoProcess(t *testing.T) {
	opts := lt.Options(t, cluster, lt.ShellImages())
	opts.NodeName = "stopper"
	opts.Labels = map[string]string{"pool": "stopper"}
	opts.ShutdownGracePeriod = 3 * time.Second
	n, err := localnode.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = n.Run(ctx) }()
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}

	ns := cluster.CreateNamespace(t)
	pod := shellPod(ns, "unbound", `sleep 3600 & setsid sleep 3601 & trap '' TERM; wait`)
	pod.Spec.NodeName = ""
	pod.Spec.NodeSelector = map[string]string{"pool": "stopper"}
	pod = createPod(t, pod)
	other := shellPod(ns, "elsewhere", `sleep 1`)
	other.Spec.NodeName = ""
	other.Spec.NodeSelector = map[string]string{"pool": "gpu"}
	other = createPod(t, other)

	p := lt.WaitForPod(t, cluster, ns, pod.Name, 30*time.Second, lt.PodReady)
	if p.Spec.NodeName != "stopper" {
		t.Fatalf("bound to %q", p.Spec.NodeName)
	}
	scheduled := false
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionTrue {
			scheduled = true
		}
	}
	if !scheduled {
		t.Errorf("PodScheduled condition lost: %+v", p.Status.Conditions)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(lt.Processes(pod.UID)) < 4 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}

	cancel()
	select {
	case <-n.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("node did not stop")
	}
	if pids := lt.Processes(pod.UID); len(pids) > 0 {
		t.Fatalf("processes outlived the node: %v", pids)
	}
	o, err := cluster.Kube.CoreV1().Pods(ns).Get(context.Background(), other.Name, metav1.GetOptions{})
	if err != nil || o.Spec.NodeName != "" {
		t.Errorf("pod with a non-matching nodeSelector bound to %q (%v)", o.Spec.NodeName, err)
	}
}

// TestSidecar: an init container with restartPolicy Always runs beside the
// app container and is stopped when the pod completes.
func TestSidecar(t *testing.T) {
	ns := cluster.CreateNamespace(t)
	pod := shellPod(ns, "with-sidecar", `test -e /shared/sidecar-up && echo main-done`)
	pod.Spec.Volumes = []corev1.Volume{{Name: "shared", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	mount := []corev1.VolumeMount{{Name: "shared", MountPath: "/shared"}}
	pod.Spec.Containers[0].VolumeMounts = mount
	pod.Spec.InitContainers = []corev1.Container{{
		Name: "sidecar", Image: shellImage, RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
		Command: []string{"sh", "-c", "touch /shared/sidecar-up; exec sleep 3600"}, VolumeMounts: mount,
		StartupProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"test", "-e", "/shared/sidecar-up"}}},
			PeriodSeconds: 1, FailureThreshold: 10,
		},
	}}
	pod = createPod(t, pod)
	p := lt.WaitForPod(t, cluster, ns, pod.Name, 30*time.Second, lt.PodPhase(corev1.PodSucceeded))
	if term := terminated(p, "main"); term == nil || term.ExitCode != 0 {
		t.Errorf("main: %+v", containerStatus(p, "main").State)
	}
	lt.WaitForNoProcesses(t, pod.UID, 10*time.Second)
}

// TestForceDeleteAndReuseName: a pod force-deleted (grace 0) is stopped, and a
// new pod of the same name created at once runs.
func TestForceDeleteAndReuseName(t *testing.T) {
	ns := cluster.CreateNamespace(t)
	ctx := context.Background()
	old := createPod(t, shellPod(ns, "reused", `exec sleep 3600`))
	lt.WaitForPod(t, cluster, ns, old.Name, 30*time.Second, lt.PodReady)
	if _, _, err := cluster.Kubectl(ctx, "", "delete", "pod", "-n", ns, old.Name, "--grace-period=0", "--force"); err != nil {
		t.Fatal(err)
	}
	fresh := createPod(t, shellPod(ns, "reused", `exec sleep 3600`))
	p := lt.WaitForPod(t, cluster, ns, fresh.Name, 30*time.Second, func(p *corev1.Pod) bool { return p.UID == fresh.UID && lt.PodReady(p) })
	if p.Status.Phase != corev1.PodRunning {
		t.Errorf("new pod %s", p.Status.Phase)
	}
	lt.WaitForNoProcesses(t, old.UID, 10*time.Second)
	if len(lt.Processes(fresh.UID)) == 0 {
		t.Error("the new pod has no processes")
	}
}
