package manager

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/exo-in-go/exo/pkg/agentlet"
	agentletconfig "github.com/exo-in-go/exo/pkg/agentlet/config"
	"github.com/exo-in-go/exo/pkg/agentlet/endpoint"
	"github.com/exo-in-go/exo/pkg/certs"
	"github.com/exo-in-go/exo/pkg/controllers/agent"
	"github.com/exo-in-go/exo/test/framework"
)

var (
	cluster *framework.Cluster
	verbose = flag.Bool("manager-log", false, "log the managers' output")
)

// waitFor bounds every wait for the controllers in these tests.
const waitFor = 90 * time.Second

func TestMain(m *testing.M) {
	flag.Parse()
	if *verbose {
		ctrl.SetLogger(klog.NewKlogr())
	} else {
		ctrl.SetLogger(logr.Discard())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	var err error
	cluster, err = framework.Start(ctx, framework.Options{})
	if err == nil {
		err = cluster.EnsureNamespace(ctx, "agentkube-system")
	}
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting test cluster:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = cluster.Stop()
	os.Exit(code)
}

// testResolver maps Agent pods to the agentlets the fake kubelets started,
// by pod UID: the one piece of the production path a node-less test
// replaces (production reaches the pod IP). Scheme and certificate name
// still come from the pod spec, as in production.
var testResolver = &uidResolver{}

type uidResolver struct{ addrs sync.Map }

func (r *uidResolver) AgentletAddress(_ context.Context, pod *corev1.Pod) (string, error) {
	if u, ok := r.addrs.Load(pod.UID); ok {
		return u.(string), nil
	}
	return "", fmt.Errorf("no agentlet runs for pod %s", pod.Name)
}

// testAgentletCA issues the agentlets' certificates in these tests: the Agent
// controller writes each Agent's <agent>-agentlet-tls Secret from it, the fake
// kubelet mounts that Secret, and the AgentRun controller verifies against it.
var testAgentletCA = func() certs.StaticAgentletAuthority {
	ca, err := certs.NewCA("agentlet-test-ca", 24*time.Hour)
	if err != nil {
		panic(err)
	}
	return certs.StaticAgentletAuthority{CA: ca}
}()

type testManager struct {
	*Manager
	stop func()
}

var nonName = regexp.MustCompile(`[^a-z0-9-]+`)

// startManager runs a manager in-process until the test ends (or stop).
func startManager(t testing.TB, cfg *rest.Config, mutate func(*Options)) *testManager {
	t.Helper()
	o := DefaultOptions()
	o.MetricsBindAddress = "127.0.0.1:0"
	o.HealthProbeBindAddress = "127.0.0.1:0"
	o.LeaderElectionID = strings.Trim(nonName.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	// Fast leadership turnover: stopping releases the Lease anyway.
	o.LeaseDuration, o.RenewDeadline, o.RetryPeriod = 4*time.Second, 3*time.Second, 500*time.Millisecond
	o.KubeAPIQPS, o.KubeAPIBurst = 200, 400
	o.RunPollInterval = time.Second
	o.GracefulShutdownTimeout = 10 * time.Second
	o.AgentletAddresser = testResolver
	o.AgentletCA = testAgentletCA
	if mutate != nil {
		mutate(&o)
	}
	m, err := New(cfg, o)
	if err != nil {
		t.Fatalf("new manager: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- m.Start(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("manager stopped with error: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return &testManager{Manager: m, stop: stop}
}

// fakeKubelet plays the node for Agent pods of one namespace: it starts a
// real agentlet (in-process, on 127.0.0.1) from the pod's own environment,
// resolving secretKeyRef and configMapKeyRef like the kubelet does, and
// reports the pod Running and Ready through the status subresource.
type fakeKubelet struct {
	t    testing.TB
	kube kubernetes.Interface
	ns   string
	dir  string

	mu        sync.Mutex
	agentlets map[types.UID]*runningAgentlet
}

type runningAgentlet struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func startKubelet(t testing.TB, ns string) *fakeKubelet {
	k := &fakeKubelet{t: t, kube: cluster.Kube, ns: ns, dir: t.TempDir(), agentlets: map[types.UID]*runningAgentlet{}}
	factory := informers.NewSharedInformerFactoryWithOptions(cluster.Kube, 0, informers.WithNamespace(ns))
	inf := factory.Core().V1().Pods().Informer()
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { k.sync(o.(*corev1.Pod)) },
		UpdateFunc: func(_, o any) { k.sync(o.(*corev1.Pod)) },
		DeleteFunc: func(o any) {
			if pod, ok := o.(*corev1.Pod); ok {
				k.stopAgentlet(pod.UID)
			} else if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
				if pod, ok := d.Obj.(*corev1.Pod); ok {
					k.stopAgentlet(pod.UID)
				}
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	factory.Start(stop)
	t.Cleanup(func() {
		close(stop)
		factory.Shutdown()
		k.mu.Lock()
		uids := make([]types.UID, 0, len(k.agentlets))
		for uid := range k.agentlets {
			uids = append(uids, uid)
		}
		k.mu.Unlock()
		for _, uid := range uids {
			k.stopAgentlet(uid)
		}
	})
	return k
}

func (k *fakeKubelet) sync(pod *corev1.Pod) {
	if !pod.DeletionTimestamp.IsZero() || len(pod.Spec.Containers) == 0 || pod.Spec.Containers[0].Name != agent.ContainerAgent {
		return
	}
	k.mu.Lock()
	_, running := k.agentlets[pod.UID]
	k.mu.Unlock()
	if running {
		return
	}
	if err := k.startAgentlet(pod); err != nil {
		k.t.Errorf("fake kubelet: start agentlet of pod %s: %v", pod.Name, err)
	}
}

// restartAgentlet simulates the agentlet container restarting: a fresh
// agentlet (which knows no runs) replaces the old one in the same pod.
func (k *fakeKubelet) restartAgentlet(pod *corev1.Pod) {
	k.stopAgentlet(pod.UID)
	if err := k.startAgentlet(pod); err != nil {
		k.t.Fatalf("restart agentlet: %v", err)
	}
}

func (k *fakeKubelet) startAgentlet(pod *corev1.Pod) error {
	ctx := context.Background()
	env := map[string]string{}
	for _, e := range pod.Spec.Containers[0].Env {
		v, err := k.resolve(ctx, e)
		if err != nil {
			return err
		}
		env[e.Name] = v
	}
	cfg, err := agentletconfig.FromEnv(func(name string) (string, bool) { v, ok := env[name]; return v, ok })
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(k.dir, "pod-")
	if err != nil {
		return err
	}
	cfg.DataDir, cfg.WorkDir = dir, dir
	if err := k.mountTLS(ctx, pod, dir, &cfg); err != nil {
		return err
	}
	cfg.KillGracePeriod = 500 * time.Millisecond
	a, err := agentlet.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	actx, cancel := context.WithCancel(ctx)
	ra := &runningAgentlet{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(ra.done)
		_ = a.Serve(actx, ln)
	}()
	k.mu.Lock()
	k.agentlets[pod.UID] = ra
	k.mu.Unlock()
	testResolver.addrs.Store(pod.UID, ln.Addr().String())

	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := k.kube.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.UID != pod.UID {
			return nil
		}
		now := metav1.Now()
		cur.Status.Phase = corev1.PodRunning
		cur.Status.PodIP = "127.0.0.1"
		cur.Status.PodIPs = []corev1.PodIP{{IP: "127.0.0.1"}}
		cur.Status.StartTime = &now
		cur.Status.Conditions = []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}
		cur.Status.ContainerStatuses = nil
		for _, c := range cur.Spec.Containers {
			cur.Status.ContainerStatuses = append(cur.Status.ContainerStatuses, corev1.ContainerStatus{
				Name: c.Name, Image: c.Image, ImageID: c.Image, Ready: true, Started: ptrBool(true),
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
			})
		}
		_, err = k.kube.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	})
}

func (k *fakeKubelet) stopAgentlet(uid types.UID) {
	k.mu.Lock()
	ra := k.agentlets[uid]
	delete(k.agentlets, uid)
	k.mu.Unlock()
	if ra != nil {
		ra.cancel()
		<-ra.done
	}
}

func (k *fakeKubelet) resolve(ctx context.Context, e corev1.EnvVar) (string, error) {
	switch {
	case e.ValueFrom == nil:
		return e.Value, nil
	case e.ValueFrom.SecretKeyRef != nil:
		ref := e.ValueFrom.SecretKeyRef
		s, err := k.kube.CoreV1().Secrets(k.ns).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		return string(s.Data[ref.Key]), nil
	case e.ValueFrom.ConfigMapKeyRef != nil:
		ref := e.ValueFrom.ConfigMapKeyRef
		cm, err := k.kube.CoreV1().ConfigMaps(k.ns).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		return cm.Data[ref.Key], nil
	}
	return "", fmt.Errorf("env %s: unsupported source", e.Name)
}

// mountTLS plays the kubelet's Secret volume for the agentlet's certificate:
// the files the pod's env names under the volume's mount path are written
// from the Secret the Agent controller issued.
func (k *fakeKubelet) mountTLS(ctx context.Context, pod *corev1.Pod, dir string, cfg *agentletconfig.Config) error {
	if cfg.TLSCertFile == "" {
		return nil
	}
	var secretName string
	for _, v := range pod.Spec.Volumes {
		if v.Name == endpoint.TLSVolume && v.Secret != nil {
			secretName = v.Secret.SecretName
		}
	}
	s, err := k.kube.CoreV1().Secrets(pod.Namespace).Get(ctx, secretName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("agentlet TLS volume: %w", err)
	}
	tlsDir := filepath.Join(dir, "tls")
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		return err
	}
	for _, f := range []*string{&cfg.TLSCertFile, &cfg.TLSKeyFile} {
		key := strings.TrimPrefix(*f, endpoint.TLSMountPath+"/")
		*f = filepath.Join(tlsDir, key)
		if err := os.WriteFile(*f, s.Data[key], 0o600); err != nil {
			return err
		}
	}
	return nil
}

func ptrBool(b bool) *bool { return &b }

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
