package manager

import (
	"context"
	"fmt"
	"k8s.io/client-go/util/retry"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	agentletconfig "github.com/exo-in-go/exo/pkg/agentlet/config"
	"github.com/exo-in-go/exo/pkg/agentlet/endpoint"
	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/controllers/agent"
	"github.com/exo-in-go/exo/pkg/controllers/agentrun"
	"github.com/exo-in-go/exo/pkg/runtimes"
	"github.com/exo-in-go/exo/test/poll"
)

func getPod(t testing.TB, ns, name string) (*corev1.Pod, error) {
	return cluster.Kube.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
}

func getAgent(t testing.TB, ns, name string) *agentkubev1alpha1.Agent {
	t.Helper()
	a, err := cluster.Agentkube.AgentkubeV1alpha1().Agents(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get agent: %v", err)
	}
	return a
}

func envOf(c corev1.Container) map[string]corev1.EnvVar {
	m := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		m[e.Name] = e
	}
	return m
}

func createSecret(t testing.TB, ns, name string, data map[string]string) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, StringData: data}
	if _, err := cluster.Kube.CoreV1().Secrets(ns).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestAgentPod(t *testing.T) {
	startManager(t, cluster.Config, func(o *Options) {
		o.Images = runtimes.Images{Registry: "mirror.test/exo-in-go", Overrides: map[string]string{"AGENTLET": "agentlet:test"}}
	})
	ns := cluster.CreateNamespace(t)
	ctx := context.Background()
	createSecret(t, ns, "anthropic", map[string]string{"api-key": "sk-test"})
	ag := &agentkubev1alpha1.Agent{
		ObjectMeta: metav1.ObjectMeta{Name: "coder", Namespace: ns},
		Spec: agentkubev1alpha1.AgentSpec{
			Runtime:    agentkubev1alpha1.RuntimeClaudeCode,
			Goal:       &agentkubev1alpha1.AgentGoal{Inline: "keep the build green"},
			Model:      &agentkubev1alpha1.ModelSpec{Name: "claude-opus-4-7", Provider: "anthropic"},
			AgentToken: &agentkubev1alpha1.AgentToken{SecretRef: agentkubev1alpha1.SecretKeyRef{Name: "anthropic", Key: "api-key"}},
			Tools:      []agentkubev1alpha1.LocalObjectReference{{Name: "db"}},
		},
	}
	ag, err := cluster.Agentkube.AgentkubeV1alpha1().Agents(ns).Create(ctx, ag, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	var pod *corev1.Pod
	poll.UntilNamed(t, "pod created", waitFor, func() (err error) { pod, err = getPod(t, ns, "coder"); return err })

	// Owner reference, containers, env.
	if ref := metav1.GetControllerOf(pod); ref == nil || ref.UID != ag.UID || ref.Kind != "Agent" {
		t.Fatalf("pod owner = %+v, want the Agent", ref)
	}
	// One container: the runtime's image with the agentlet, installed by the
	// init container from the agentlet image, as its entrypoint.
	if len(pod.Spec.InitContainers) != 1 || len(pod.Spec.Containers) != 1 {
		t.Fatalf("init containers %v, containers %v", pod.Spec.InitContainers, pod.Spec.Containers)
	}
	install, al := pod.Spec.InitContainers[0], pod.Spec.Containers[0]
	if install.Name != agent.InitContainerAgentlet || install.Image != "agentlet:test" ||
		strings.Join(install.Args, " ") != "install "+agent.AgentletEntrypoint || len(install.Command) != 0 {
		t.Errorf("installer = %+v", install)
	}
	if al.Name != agent.ContainerAgent || al.Image != "mirror.test/exo-in-go/claudecode:"+runtimes.DefaultTag ||
		strings.Join(al.Command, " ") != agent.AgentletEntrypoint {
		t.Errorf("agent container = %s %s %v", al.Name, al.Image, al.Command)
	}
	if len(al.Ports) != 1 || al.Ports[0].Name != agentletconfig.PortName || al.Ports[0].ContainerPort != agentletconfig.DefaultPort {
		t.Errorf("agentlet ports = %v", al.Ports)
	}
	// Non-root, read-only root filesystem, no privileges, writable HOME,
	// /tmp and workspace.
	psc, sc := pod.Spec.SecurityContext, al.SecurityContext
	if psc == nil || !ptr.Deref(psc.RunAsNonRoot, false) || ptr.Deref(psc.RunAsUser, 0) == 0 || psc.SeccompProfile == nil ||
		sc == nil || !ptr.Deref(sc.ReadOnlyRootFilesystem, false) || ptr.Deref(sc.AllowPrivilegeEscalation, true) {
		t.Errorf("security contexts: pod %+v, container %+v", psc, sc)
	}
	mounted := map[string]bool{}
	for _, m := range al.VolumeMounts {
		mounted[m.MountPath] = !m.ReadOnly
	}
	for _, dir := range []string{"/home/agent", "/tmp", "/workspace", "/var/lib/agentlet"} {
		if !mounted[dir] {
			t.Errorf("%s is not a writable volume: %v", dir, al.VolumeMounts)
		}
	}
	aenv := envOf(al)
	if aenv["HOME"].Value != "/home/agent" {
		t.Errorf("HOME = %q", aenv["HOME"].Value)
	}
	key := aenv["ANTHROPIC_API_KEY"].ValueFrom
	if key == nil || key.SecretKeyRef == nil || key.SecretKeyRef.Name != "anthropic" || key.SecretKeyRef.Key != "api-key" {
		t.Errorf("ANTHROPIC_API_KEY = %+v, want a reference to anthropic/api-key", aenv["ANTHROPIC_API_KEY"])
	}
	tok := aenv[agentletconfig.EnvToken].ValueFrom
	if tok == nil || tok.SecretKeyRef == nil || tok.SecretKeyRef.Name != endpoint.TokenSecretName("coder") {
		t.Errorf("AGENTLET_TOKEN = %+v", aenv[agentletconfig.EnvToken])
	}
	for name, want := range map[string]string{
		agentletconfig.EnvRuntime: "ClaudeCode", agentletconfig.EnvGoal: "keep the build green",
		agentletconfig.EnvModel: "claude-opus-4-7", agentletconfig.EnvModelProvider: "anthropic",
		agentletconfig.EnvTools: `["db"]`,
	} {
		if got := aenv[name].Value; got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	tokenSecret, err := cluster.Kube.CoreV1().Secrets(ns).Get(ctx, endpoint.TokenSecretName("coder"), metav1.GetOptions{})
	if err != nil || len(tokenSecret.Data[endpoint.TokenSecretKey]) != 64 || metav1.GetControllerOf(tokenSecret).UID != ag.UID {
		t.Fatalf("token secret: %v %+v", err, tokenSecret)
	}

	// Without a node the pod stays Pending, and so does the Agent.
	poll.UntilNamed(t, "agent status", waitFor, func() error {
		a := getAgent(t, ns, "coder")
		if a.Status.Phase != agentkubev1alpha1.AgentPhasePending || a.Status.Ready != "0/1" || a.Status.PodName != "coder" {
			return fmt.Errorf("status = %+v", a.Status)
		}
		return nil
	})

	// A deleted pod comes back.
	if err := cluster.Kube.CoreV1().Pods(ns).Delete(ctx, "coder", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.UntilNamed(t, "pod recreated", waitFor, func() error {
		p, err := getPod(t, ns, "coder")
		if err != nil {
			return err
		}
		if p.UID == pod.UID {
			return fmt.Errorf("still the old pod")
		}
		pod = p
		return nil
	})

	// A changed spec rolls the pod.
	updateAgent(t, ns, "coder", func(a *agentkubev1alpha1.Agent) { a.Spec.Model.Name = "claude-sonnet-4-5" })
	poll.UntilNamed(t, "pod replaced", waitFor, func() error {
		p, err := getPod(t, ns, "coder")
		if err != nil {
			return err
		}
		if p.UID == pod.UID {
			return fmt.Errorf("still the old pod")
		}
		if got := envOf(p.Spec.Containers[0])[agentletconfig.EnvModel].Value; got != "claude-sonnet-4-5" {
			return fmt.Errorf("model = %q", got)
		}
		return nil
	})

	// Paused: phase Paused.
	updateAgent(t, ns, "coder", func(a *agentkubev1alpha1.Agent) { a.Spec.Paused = true })
	poll.UntilNamed(t, "paused", waitFor, func() error {
		if p := getAgent(t, ns, "coder").Status.Phase; p != agentkubev1alpha1.AgentPhasePaused {
			return fmt.Errorf("phase %s", p)
		}
		return nil
	})
}

func TestAgentMissingTokenSecret(t *testing.T) {
	startManager(t, cluster.Config, nil)
	ns := cluster.CreateNamespace(t)
	ctx := context.Background()
	ag := &agentkubev1alpha1.Agent{
		ObjectMeta: metav1.ObjectMeta{Name: "codex", Namespace: ns},
		Spec: agentkubev1alpha1.AgentSpec{
			Runtime:    agentkubev1alpha1.RuntimeCodex,
			AgentToken: &agentkubev1alpha1.AgentToken{SecretRef: agentkubev1alpha1.SecretKeyRef{Name: "openai", Key: "token"}},
		},
	}
	if _, err := cluster.Agentkube.AgentkubeV1alpha1().Agents(ns).Create(ctx, ag, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	expectCondition := func(reason string, mentions ...string) {
		t.Helper()
		poll.UntilNamed(t, "condition "+reason, waitFor, func() error {
			a := getAgent(t, ns, "codex")
			c := meta.FindStatusCondition(a.Status.Conditions, agentkubev1alpha1.ConditionReconciled)
			if c == nil || c.Status != metav1.ConditionFalse || c.Reason != reason {
				return fmt.Errorf("Reconciled = %+v", c)
			}
			for _, m := range mentions {
				if !strings.Contains(c.Message, m) {
					return fmt.Errorf("message %q does not mention %q", c.Message, m)
				}
			}
			if a.Status.Phase != agentkubev1alpha1.AgentPhaseFailed {
				return fmt.Errorf("phase %s", a.Status.Phase)
			}
			return nil
		})
	}
	expectCondition(agentkubev1alpha1.ReasonSecretNotFound, `"openai"`, `"token"`)
	if _, err := getPod(t, ns, "codex"); err == nil {
		t.Fatal("pod created although its token Secret is missing")
	}

	// The Secret appears without the key: the condition names the key.
	createSecret(t, ns, "openai", map[string]string{"other": "x"})
	expectCondition(agentkubev1alpha1.ReasonSecretKeyNotFound, `"openai"`, `"token"`, "other")

	// The key appears: the pod follows.
	s, err := cluster.Kube.CoreV1().Secrets(ns).Get(ctx, "openai", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Data["token"] = []byte("sk-openai")
	if _, err := cluster.Kube.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.UntilNamed(t, "pod after the key appeared", waitFor, func() error { _, err := getPod(t, ns, "codex"); return err })
	poll.UntilNamed(t, "Reconciled true", waitFor, func() error {
		c := meta.FindStatusCondition(getAgent(t, ns, "codex").Status.Conditions, agentkubev1alpha1.ConditionReconciled)
		if c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("Reconciled = %+v", c)
		}
		return nil
	})
}

// customAgent is an Agent whose runtime is a shell script run by a real
// agentlet. $1 is the first of args; runs append their own args.
func customAgent(ns, name, script string, args ...string) *agentkubev1alpha1.Agent {
	return &agentkubev1alpha1.Agent{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: agentkubev1alpha1.AgentSpec{
			Runtime: agentkubev1alpha1.RuntimeCustom,
			Image:   "busybox:test",
			Command: []string{"/bin/sh", "-c", script, "sh"},
			Args:    args,
		},
	}
}

func createAgent(t testing.TB, a *agentkubev1alpha1.Agent) {
	t.Helper()
	if _, err := cluster.Agentkube.AgentkubeV1alpha1().Agents(a.Namespace).Create(context.Background(), a, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func waitAgentPhase(t testing.TB, ns, name, phase string) {
	t.Helper()
	poll.UntilNamed(t, "agent "+name+" "+phase, waitFor, func() error {
		if p := getAgent(t, ns, name).Status.Phase; p != phase {
			return fmt.Errorf("phase %q", p)
		}
		return nil
	})
}

func createRun(t testing.TB, ns, name, agentName, input string, mutate ...func(*agentkubev1alpha1.AgentRun)) {
	t.Helper()
	run := &agentkubev1alpha1.AgentRun{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       agentkubev1alpha1.AgentRunSpec{AgentRef: agentkubev1alpha1.LocalObjectReference{Name: agentName}, Input: input},
	}
	for _, m := range mutate {
		m(run)
	}
	if _, err := cluster.Agentkube.AgentkubeV1alpha1().AgentRuns(ns).Create(context.Background(), run, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func getRun(t testing.TB, ns, name string) (*agentkubev1alpha1.AgentRun, error) {
	return cluster.Agentkube.AgentkubeV1alpha1().AgentRuns(ns).Get(context.Background(), name, metav1.GetOptions{})
}

// waitRun waits for a terminal phase and returns the run.
func waitRun(t testing.TB, ns, name string) *agentkubev1alpha1.AgentRun {
	t.Helper()
	var run *agentkubev1alpha1.AgentRun
	poll.UntilNamed(t, "run "+name+" finished", waitFor, func() (err error) {
		run, err = getRun(t, ns, name)
		if err != nil {
			return err
		}
		if !agentrun.IsFinished(run) {
			return fmt.Errorf("phase %q: %s", run.Status.Phase, run.Status.Message)
		}
		return nil
	})
	return run
}

func completeReason(run *agentkubev1alpha1.AgentRun) string {
	if c := meta.FindStatusCondition(run.Status.Conditions, agentkubev1alpha1.ConditionComplete); c != nil {
		return c.Reason
	}
	return ""
}

func TestAgentRunLifecycle(t *testing.T) {
	startManager(t, cluster.Config, nil)
	ns := cluster.CreateNamespace(t)
	startKubelet(t, ns)
	ctx := context.Background()

	a := customAgent(ns, "worker", `printf 'out:%s' "$(cat)"; [ "$1" = sleep ] && sleep 30; exit "${1:-0}"`)
	a.Spec.RunHistoryLimit = ptr.To[int32](2)
	createAgent(t, a)
	waitAgentPhase(t, ns, "worker", agentkubev1alpha1.AgentPhaseReady)
	if r := getAgent(t, ns, "worker").Status.Ready; r != "1/1" {
		t.Errorf("READY = %q", r)
	}

	// Success: output tail and exit code in status.
	createRun(t, ns, "r1-ok", "worker", "hello")
	run := waitRun(t, ns, "r1-ok")
	if run.Status.Phase != agentkubev1alpha1.AgentRunPhaseSucceeded || run.Status.OutputTail != "out:hello" ||
		run.Status.ExitCode == nil || *run.Status.ExitCode != 0 || run.Status.StartTime == nil || run.Status.CompletionTime == nil {
		t.Fatalf("run ok: %+v", run.Status)
	}
	if ref := metav1.GetControllerOf(run); ref == nil || ref.Name != "worker" {
		t.Errorf("run owner = %+v", ref)
	}
	// Any run, not only a scheduled one, is the Agent's last run.
	poll.UntilNamed(t, "lastRun r1-ok", waitFor, func() error {
		if got := getAgent(t, ns, "worker").Status.LastRun; got != "r1-ok" {
			return fmt.Errorf("status.lastRun = %q", got)
		}
		return nil
	})

	// Failure: exit code kept.
	createRun(t, ns, "r2-fails", "worker", "x", func(r *agentkubev1alpha1.AgentRun) { r.Spec.Args = []string{"3"} })
	run = waitRun(t, ns, "r2-fails")
	if run.Status.Phase != agentkubev1alpha1.AgentRunPhaseFailed || run.Status.ExitCode == nil || *run.Status.ExitCode != 3 || completeReason(run) != agentkubev1alpha1.ReasonRunFailed {
		t.Fatalf("run fails: %+v", run.Status)
	}

	// Timeout: the run is killed and TimedOut.
	createRun(t, ns, "r3-slow", "worker", "x", func(r *agentkubev1alpha1.AgentRun) {
		r.Spec.Args = []string{"sleep"}
		r.Spec.Timeout = &metav1.Duration{Duration: 1e9}
	})
	run = waitRun(t, ns, "r3-slow")
	if run.Status.Phase != agentkubev1alpha1.AgentRunPhaseTimedOut || run.Status.OutputTail != "out:x" {
		t.Fatalf("run slow: %+v", run.Status)
	}

	// History: runHistoryLimit 2 keeps the two newest finished runs. Times
	// in the API have one-second resolution; ties are broken by name, which
	// is why the names here sort in creation order.
	poll.UntilNamed(t, "history pruned", waitFor, func() error {
		runs, err := cluster.Agentkube.AgentkubeV1alpha1().AgentRuns(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		var names []string
		for _, r := range runs.Items {
			names = append(names, r.Name)
		}
		if len(names) != 2 || !contains(names, "r2-fails") || !contains(names, "r3-slow") {
			return fmt.Errorf("runs = %v", names)
		}
		return nil
	})

	// Paused: runs fail with AgentPaused and never reach the agentlet.
	updateAgent(t, ns, "worker", func(a *agentkubev1alpha1.Agent) { a.Spec.Paused = true })
	waitAgentPhase(t, ns, "worker", agentkubev1alpha1.AgentPhasePaused)
	createRun(t, ns, "while-paused", "worker", "x")
	run = waitRun(t, ns, "while-paused")
	if run.Status.Phase != agentkubev1alpha1.AgentRunPhaseFailed || completeReason(run) != agentkubev1alpha1.ReasonAgentPaused || run.Status.StartTime != nil {
		t.Fatalf("run while paused: %+v", run.Status)
	}

	// A run for an Agent that does not exist fails with that reason.
	createRun(t, ns, "orphan", "nobody", "x")
	if run = waitRun(t, ns, "orphan"); completeReason(run) != agentkubev1alpha1.ReasonAgentNotFound {
		t.Fatalf("orphan: %+v", run.Status)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// updateAgent changes an Agent's spec, retrying when the controller's status
// writes make the read version stale.
func updateAgent(t *testing.T, ns, name string, mutate func(*agentkubev1alpha1.Agent)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ag := getAgent(t, ns, name)
		mutate(ag)
		_, err := cluster.Agentkube.AgentkubeV1alpha1().Agents(ns).Update(context.Background(), ag, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("updating Agent %s/%s: %v", ns, name, err)
	}
}
