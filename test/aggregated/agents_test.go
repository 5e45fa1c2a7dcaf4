package aggregated

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/exo-in-go/exo/pkg/agentlet"
	agentletapi "github.com/exo-in-go/exo/pkg/agentlet/api"
	agentletconfig "github.com/exo-in-go/exo/pkg/agentlet/config"
	"github.com/exo-in-go/exo/pkg/agentlet/endpoint"
	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	agentregistry "github.com/exo-in-go/exo/pkg/registry/agent"
)

// agentSpec describes a test Agent.
type agentSpec struct {
	// command is the Custom runtime's command; each run executes it with the input on
	// stdin. Nil means the Agent has no pod: it is reported Ready but nothing executes
	// its runs (the benchmark's no-op Agent).
	command []string
	paused  bool
	// notReady leaves the Agent's status without a ready pod.
	notReady bool
}

// newAgent creates an Agent and, unless it has no command, what the manager would give it
// on a node: a running pod whose agentlet port is a real agentlet on a loopback port, and
// the agentlet's token Secret. The aggregated server finds the agentlet through its
// default PodLocator, exactly as in a cluster.
func newAgent(t testing.TB, namespace, name string, spec agentSpec) *agentkubev1alpha1.Agent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := env.cluster
	agent := &agentkubev1alpha1.Agent{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: agentkubev1alpha1.AgentSpec{
			Runtime: agentkubev1alpha1.RuntimeCustom,
			Image:   "registry.example/agentkube/custom-test:1",
			Command: spec.command,
			Paused:  spec.paused,
		},
	}
	created, err := c.Agentkube.AgentkubeV1alpha1().Agents(namespace).Create(ctx, agent, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating Agent: %v", err)
	}
	if spec.command != nil {
		startAgentPod(t, namespace, name, spec.command)
	}
	if !spec.notReady {
		created.Status.Phase = agentkubev1alpha1.AgentPhaseReady
		created.Status.PodName = name
		created.Status.Ready = "1/1"
		if spec.paused {
			created.Status.Phase = agentkubev1alpha1.AgentPhasePaused
		}
		if created, err = c.Agentkube.AgentkubeV1alpha1().Agents(namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("setting Agent status: %v", err)
		}
	}
	// Wait for the aggregated server's cache to hold this state: it answers from it.
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err := c.Agentkube.SubresourcesV1alpha1().Agents(namespace).Get(ctx, name, metav1.GetOptions{})
		return err == nil && got.Status.Phase == created.Status.Phase, nil
	})
	if err != nil {
		t.Fatalf("the aggregated API never showed Agent %s/%s: %v", namespace, name, err)
	}
	return created
}

// startAgentPod runs a real agentlet for the Agent and publishes it as the Agent's pod
// (scheduled to a made-up node, running, with a loopback pod IP and the agentlet's port)
// plus the token Secret.
func startAgentPod(t testing.TB, namespace, name string, command []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	token := randomToken(t)
	cfg := agentletconfig.Default()
	cfg.Token = token
	cfg.Runtime = agentletconfig.RuntimeCustom
	cfg.Command = command
	cfg.AttachCommand = []string{"/bin/sh"}
	cfg.DataDir = t.TempDir()
	cfg.KillGracePeriod = time.Second
	a, err := agentlet.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("configuring agentlet: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveCtx, stop := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = a.Serve(serveCtx, ln)
	}()
	t.Cleanup(func() {
		stop()
		<-served
	})

	c := env.cluster
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: corev1.PodSpec{
			NodeName: "test-node",
			Containers: []corev1.Container{{
				Name:  "agentlet",
				Image: "registry.example/agentkube/agentlet:test",
				Ports: []corev1.ContainerPort{{Name: agentletconfig.PortName, ContainerPort: int32(ln.Addr().(*net.TCPAddr).Port)}},
			}},
		},
	}
	pod, err = c.Kube.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating pod: %v", err)
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIP = "127.0.0.1"
	pod.Status.PodIPs = []corev1.PodIP{{IP: "127.0.0.1"}}
	if _, err := c.Kube.CoreV1().Pods(namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("setting pod status: %v", err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: endpoint.TokenSecretName(name), Namespace: namespace},
		Data:       map[string][]byte{endpoint.TokenSecretKey: []byte(token)},
	}
	if _, err := c.Kube.CoreV1().Secrets(namespace).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating token Secret: %v", err)
	}
}

func randomToken(t testing.TB) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// The executor below is the smallest stand-in for the manager's AgentRun controller: it
// starts each new AgentRun on its Agent's agentlet and copies the agentlet's run status
// into the AgentRun until it ends. It finds agentlets with the same PodLocator as the
// server, and leaves runs of Agents without a pod Pending.
var (
	executorCancel context.CancelFunc
	executorWG     sync.WaitGroup
)

func startExecutor() {
	runCtx, cancel := context.WithCancel(context.Background())
	executorCancel = cancel
	c := env.cluster
	locator := &agentregistry.PodLocator{Client: c.Kube}
	started := sync.Map{}
	executorWG.Add(1)
	go func() {
		defer executorWG.Done()
		for runCtx.Err() == nil {
			runs, err := c.Agentkube.AgentkubeV1alpha1().AgentRuns(metav1.NamespaceAll).List(runCtx, metav1.ListOptions{})
			if err == nil {
				for i := range runs.Items {
					run := runs.Items[i]
					if run.Status.Phase != "" {
						continue
					}
					if _, loaded := started.LoadOrStore(run.UID, true); loaded {
						continue
					}
					executorWG.Add(1)
					go func() {
						defer executorWG.Done()
						if !execute(runCtx, locator, &run) {
							started.Delete(run.UID) // not executable (yet): look again later
						}
					}()
				}
			}
			select {
			case <-runCtx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
}

func stopExecutor() {
	if executorCancel != nil {
		executorCancel()
		executorWG.Wait()
	}
}

// execute runs one AgentRun to its end; false means it could not start.
func execute(ctx context.Context, locator agentregistry.Locator, run *agentkubev1alpha1.AgentRun) bool {
	c := env.cluster
	agent, err := c.Agentkube.AgentkubeV1alpha1().Agents(run.Namespace).Get(ctx, run.Spec.AgentRef.Name, metav1.GetOptions{})
	if err != nil || agent.Spec.Command == nil {
		return false
	}
	ep, err := locator.Locate(ctx, agent)
	if err != nil {
		return false
	}
	client, err := ep.Client(nil)
	if err != nil {
		return false
	}
	var timeout int64
	if run.Spec.Timeout != nil {
		timeout = int64(run.Spec.Timeout.Seconds())
	}
	if _, _, err := client.StartRun(ctx, agentletapi.RunRequest{ID: run.Name, Input: run.Spec.Input, Args: run.Spec.Args, TimeoutSeconds: timeout}); err != nil {
		return false
	}
	now := metav1.Now()
	if !setRunStatus(ctx, run, func(st *agentkubev1alpha1.AgentRunStatus) {
		st.Phase = agentkubev1alpha1.AgentRunPhaseRunning
		st.RunID = run.Name
		st.PodName = agent.Status.PodName
		st.StartTime = &now
	}) {
		return true
	}
	for ctx.Err() == nil {
		got, err := client.GetRun(ctx, run.Name)
		if err == nil && got.Phase.Finished() {
			setRunStatus(ctx, run, func(st *agentkubev1alpha1.AgentRunStatus) {
				st.Phase = string(got.Phase)
				if got.Phase == "Canceled" {
					st.Phase = agentkubev1alpha1.AgentRunPhaseFailed
				}
				if got.ExitCode != nil {
					st.ExitCode = ptr.To(int32(*got.ExitCode))
				}
				st.OutputTail = tail(got.OutputTail, agentkubev1alpha1.MaxOutputTailBytes)
				st.Message = got.Message
				done := metav1.Now()
				st.CompletionTime = &done
			})
			return true
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	return true
}

func setRunStatus(ctx context.Context, run *agentkubev1alpha1.AgentRun, mutate func(*agentkubev1alpha1.AgentRunStatus)) bool {
	runs := env.cluster.Agentkube.AgentkubeV1alpha1().AgentRuns(run.Namespace)
	for ctx.Err() == nil {
		latest, err := runs.Get(ctx, run.Name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		mutate(&latest.Status)
		if _, err := runs.UpdateStatus(ctx, latest, metav1.UpdateOptions{}); err == nil {
			return true
		}
	}
	return false
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[len(s)-n:], "")
}
