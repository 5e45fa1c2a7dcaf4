package realnode_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/exo-in-go/exo/test/poll"
	"github.com/exo-in-go/exo/test/realnode"
)

// TestRealNode runs a workload on a real node and checks every way in and out of it,
// then a second cluster beside the first, a crash and the recovery from it, and that
// stopping leaves nothing behind.
func TestRealNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sharedBefore := existing(realnode.Shared())
	busybox, err := realnode.BusyboxImage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := realnode.StartT(t, realnode.Options{Images: []string{busybox}})

	t.Run("workload", func(t *testing.T) { testWorkload(ctx, t, c) })
	t.Run("beside", func(t *testing.T) { testSecondCluster(ctx, t, c) })
	if t.Failed() {
		return // StartT's clean-up prints the daemons' logs, then stops the cluster
	}

	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if left := realnode.Leftovers(c); len(left) > 0 {
		t.Fatalf("left after Stop: %v", left)
	}
	// The last cluster to stop removes the shared folders the clusters created; another
	// package's cluster may still run, and then they stay.
	if others := existing([]string{"/run/exo-realnode"}); len(others) == 0 {
		for p := range existing(realnode.Shared()) {
			if !sharedBefore[p] {
				t.Errorf("%s was made by the clusters and is still there after the last stopped", p)
			}
		}
	}
}

// existing returns which of the paths exist.
func existing(paths []string) map[string]bool {
	m := map[string]bool{}
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			m[p] = true
		}
	}
	return m
}

func testWorkload(ctx context.Context, t *testing.T, c *realnode.Cluster) {
	dep, svc := webDeployment()
	if _, err := c.Kube.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc, err := c.Kube.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	poll.UntilNamed(t, "deployment web Available", time.Minute, func() error {
		d, err := c.Kube.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if d.Status.AvailableReplicas < 1 {
			return fmt.Errorf("status %+v", d.Status)
		}
		return nil
	})
	t.Logf("deployment Available %s after it was created", time.Since(began).Round(time.Millisecond))

	// kube-apiserver → kubelet (verified serving certificate) → containerd → the pod.
	if out, err := c.Kubectl(ctx, "logs", "deploy/web"); err != nil || !strings.Contains(out, "serving") {
		t.Fatalf("kubectl logs: %q, %v", out, err)
	}
	if out, err := c.Kubectl(ctx, "exec", "deploy/web", "--", "sh", "-c", "id -u; cat /www/index.html"); err != nil || out != "65532\nhello from web\n" {
		t.Fatalf("kubectl exec: %q, %v", out, err)
	}

	// A pod resolves the Service's name with CoreDNS and reaches its ClusterIP through
	// kube-proxy's rules (back to itself: hairpin). Service changes take a moment to
	// reach both, so the test waits for the Service to answer, not only for the pod.
	name := "web.default.svc.cluster.local"
	poll.UntilNamed(t, "pod → "+name+" → ClusterIP", 30*time.Second, func() error {
		out, err := c.Kubectl(ctx, "exec", "deploy/web", "--", "sh", "-c", "nslookup "+name+" && "+httpGet(svc.Spec.ClusterIP, "80", "/"))
		if err != nil {
			return err
		}
		if !strings.Contains(out, "Address: "+svc.Spec.ClusterIP) || !strings.Contains(out, "hello from web") {
			return fmt.Errorf("unexpected output %q", out)
		}
		return nil
	})

	// A pod reaches a server on the host's loopback through ExposeHost.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "host saw %s", r.URL.Path)
	})}
	go func() { _ = host.Serve(ln) }()
	t.Cleanup(func() { host.Close() })
	addr, stop, err := c.ExposeHost(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	hostIP, port, _ := net.SplitHostPort(addr)
	if out, err := c.Kubectl(ctx, "exec", "deploy/web", "--", "sh", "-c", httpGet(hostIP, port, "/from-pod")); err != nil || !strings.Contains(out, "host saw /from-pod") {
		t.Fatalf("pod → host server via %s: %q, %v", addr, out, err)
	}

	// The test reaches the pod's IP, and the Service by name, from the host.
	pods, err := c.Kube.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods of web: %v, %v", pods, err)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: c.DialContext}}
	for _, url := range []string{"http://" + pods.Items[0].Status.PodIP + ":8080/", "http://" + name + "/"} {
		if body, err := get(ctx, hc, url); err != nil || body != "hello from web\n" {
			t.Fatalf("GET %s from the host: %q, %v", url, body, err)
		}
	}
}

// webDeployment is busybox's httpd as a restricted pod: non-root, read-only root file
// system, no capabilities, its page on an emptyDir.
func webDeployment() (*appsv1.Deployment, *corev1.Service) {
	labels := map[string]string{"app": "web"}
	pod := corev1.PodSpec{
		AutomountServiceAccountToken: new(false),
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   new(true),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Containers: []corev1.Container{{
			Name:            "web",
			Image:           realnode.BusyboxImageRef,
			ImagePullPolicy: corev1.PullNever,
			Command:         []string{"/bin/sh", "-c", "echo hello from web > /www/index.html && echo serving && exec httpd -f -v -p 8080 -h /www"},
			Ports:           []corev1.ContainerPort{{ContainerPort: 8080}},
			ReadinessProbe: &corev1.Probe{
				ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}},
				PeriodSeconds: 1,
			},
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: new(false),
				ReadOnlyRootFilesystem:   new(true),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
			VolumeMounts: []corev1.VolumeMount{{Name: "www", MountPath: "/www"}},
		}},
		Volumes: []corev1.Volume{{Name: "www", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
	}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: pod},
		},
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	return dep, svc
}

// httpGet is a shell command that sends an HTTP/1.0 GET with busybox's nc (its wget
// cannot run in these images) and prints the response.
func httpGet(ip, port, path string) string {
	return fmt.Sprintf(`printf 'GET %s HTTP/1.0\r\n\r\n' | nc -w 5 %s %s`, path, ip, port)
}

func get(ctx context.Context, hc *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("status %s", resp.Status)
	}
	return string(b), err
}

// testSecondCluster starts a second cluster beside the first, checks they are apart,
// crashes it (its owner dies: daemons gone, pods, mounts and namespace left), and starts
// again in the same folder, which must clean up the crashed run first.
func testSecondCluster(ctx context.Context, t *testing.T, first *realnode.Cluster) {
	// A short folder of the test's own (t.TempDir's names grow with the test's).
	dir, err := os.MkdirTemp("", "exo-rn-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	second := realnode.StartT(t, realnode.Options{Dir: dir})
	if second.Name == first.Name {
		t.Fatalf("both clusters are named %s", second.Name)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "only-in-second", Namespace: "default"}}
	if _, err := second.Kube.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Kube.CoreV1().ConfigMaps("default").Get(ctx, cm.Name, metav1.GetOptions{}); err == nil {
		t.Fatal("a ConfigMap created in the second cluster is in the first")
	}

	realnode.Crash(t, second)
	if left := realnode.Leftovers(second); len(left) == 0 {
		t.Fatal("the crash left nothing to clean up; the recovery below proves nothing")
	}
	// Started again without kube-proxy, the way it is meant to be used with aggregator
	// routing: Start then finds CoreDNS at its pod rather than at its Service.
	again := realnode.StartT(t, realnode.Options{Dir: dir, NoKubeProxy: true, AggregatorRouting: true})
	if again.Name != second.Name {
		t.Fatalf("the second start in %s is named %s, the first %s", dir, again.Name, second.Name)
	}
	if err := again.Stop(); err != nil {
		t.Fatal(err)
	}
	if left := realnode.Leftovers(again); len(left) > 0 {
		t.Fatalf("left after Stop: %v", left)
	}
	if _, err := os.Stat(dir + "/log/kubelet.log"); err != nil {
		t.Errorf("a given folder keeps its logs after Stop: %v", err)
	}
	var pathErr *os.PathError
	if _, err := os.Stat(dir + "/etcd"); !errors.As(err, &pathErr) {
		t.Errorf("a given folder keeps only its logs after Stop; etcd's data is still there: %v", err)
	}
}
