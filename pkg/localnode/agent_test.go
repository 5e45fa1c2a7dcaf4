//go:build linux

package localnode_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	agentletapi "github.com/exo-in-go/exo/pkg/agentlet/api"
	agentletclient "github.com/exo-in-go/exo/pkg/agentlet/client"
	agentletconfig "github.com/exo-in-go/exo/pkg/agentlet/config"
	lt "github.com/exo-in-go/exo/pkg/localnode/localnodetest"
)

// TestAgentPod runs an Agent-like pod as the manager builds it: an init
// container of the agentlet image installs the real agentlet binary, which the
// runtime image's container (a stand-in) starts with its token from a Secret;
// emptyDir volumes, a Custom runtime script from a ConfigMap, and a readiness
// probe on the agentlet's named port. The agentlet answers /healthz on the pod
// IP and runs the script.
func TestAgentPod(t *testing.T) {
	ns := cluster.CreateNamespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const token = "s3cret-agentlet-token"
	if _, err := cluster.Kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "agent-agentlet"},
		Data:       map[string][]byte{"token": []byte(token)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.Kube.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "agent-script"},
		Data:       map[string]string{"agent.sh": "#!/bin/sh\necho \"input: $(cat)\"\necho \"goal: $AGENT_GOAL\"\necho \"cwd: $(pwd)\"\n"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binMount := corev1.VolumeMount{Name: "agentlet-bin", MountPath: "/agentkube/bin"}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: ns, Labels: map[string]string{"app.kubernetes.io/component": "agent"}},
		Spec: corev1.PodSpec{
			// No nodeName: bound like any pod (here by the test below).
			RestartPolicy:                 corev1.RestartPolicyAlways,
			TerminationGracePeriodSeconds: ptr.To[int64](10),
			AutomountServiceAccountToken:  ptr.To(false),
			EnableServiceLinks:            ptr.To(false),
			NodeName:                      nodeName,
			// The agentlet image installs the agentlet into the shared volume;
			// the runtime image's container starts it from there.
			InitContainers: []corev1.Container{{
				Name: "install-agentlet", Image: agentletImage,
				Args:         []string{"install", "/agentkube/bin/agentlet"},
				VolumeMounts: []corev1.VolumeMount{binMount},
			}},
			Containers: []corev1.Container{{
				Name:    "agent",
				Image:   runtimeImage,
				Command: []string{"/agentkube/bin/agentlet"},
				Env: []corev1.EnvVar{
					{Name: agentletconfig.EnvListenAddress, Value: ":8090"},
					{Name: agentletconfig.EnvToken, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
						LocalObjectReference: corev1.LocalObjectReference{Name: "agent-agentlet"}, Key: "token",
					}}},
					{Name: agentletconfig.EnvRuntime, Value: "Custom"},
					{Name: agentletconfig.EnvCommand, Value: agentletconfig.EncodeList([]string{"/scripts/agent.sh"})},
					{Name: agentletconfig.EnvGoal, Value: "be helpful"},
					{Name: agentletconfig.EnvWorkDir, Value: "/workspace"},
					{Name: agentletconfig.EnvDataDir, Value: "/var/lib/agentlet"},
				},
				Ports: []corev1.ContainerPort{{Name: agentletconfig.PortName, ContainerPort: agentletconfig.DefaultPort}},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString(agentletconfig.PortName)}},
					PeriodSeconds: 1,
				},
				VolumeMounts: []corev1.VolumeMount{
					{Name: "workspace", MountPath: "/workspace"},
					{Name: "agentlet-data", MountPath: "/var/lib/agentlet"},
					{Name: "scripts", MountPath: "/scripts"},
					{Name: binMount.Name, MountPath: binMount.MountPath, ReadOnly: true},
				},
			}},
			Volumes: []corev1.Volume{
				{Name: "agentlet-bin", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "workspace", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "agentlet-data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "scripts", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: "agent-script"},
					DefaultMode:          ptr.To[int32](0o755),
				}}},
			},
		},
	}
	pod = createPod(t, pod)
	p := lt.WaitForPod(t, cluster, ns, pod.Name, time.Minute, lt.PodReady)
	for _, cs := range p.Status.ContainerStatuses {
		if !cs.Ready || cs.State.Running == nil {
			t.Errorf("container %s not running and ready: %+v", cs.Name, cs.State)
		}
	}

	base := "http://" + p.Status.PodIP + ":8090"
	resp, err := http.Get(base + agentletapi.PathHealthz)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %s", resp.Status)
	}
	resp, err = http.Get(base + agentletapi.PathRuns)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unauthenticated /v1/runs: %s, want 401", resp.Status)
	}

	client, err := agentletclient.New(base, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	run, _, err := client.StartRun(ctx, agentletapi.RunRequest{Input: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := client.StreamOutput(ctx, run.ID, agentletclient.OutputOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	output, _ := io.ReadAll(out)
	out.Close()
	run, err = client.GetRun(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if run.Phase != agentletapi.PhaseSucceeded || run.ExitCode == nil || *run.ExitCode != 0 {
		t.Errorf("run %+v", run)
	}
	// The run's working directory is the pod's /workspace volume, under the
	// node's state directory, not the host's /workspace.
	if !strings.Contains(string(output), "input: hello\ngoal: be helpful\ncwd: "+node.StateDir()) ||
		!strings.Contains(string(output), "/volumes/workspace\n") {
		t.Errorf("run output %q", output)
	}

	// Mount paths in the environment are mapped too.
	dataDir, _, err := cluster.Kubectl(ctx, "", "exec", "-n", ns, pod.Name, "-c", "agent", "--", "sh", "-c", `echo -n "$AGENTLET_DATA_DIR"`)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dataDir, node.StateDir()) || !strings.HasSuffix(dataDir, "/rootfs/var/lib/agentlet") {
		t.Errorf("AGENTLET_DATA_DIR %q", dataDir)
	}
	if entries, err := os.ReadDir(dataDir); err != nil || len(entries) == 0 {
		t.Errorf("agentlet data dir %s: %v entries, %v", dataDir, len(entries), err)
	}

	if err := cluster.Kube.CoreV1().Pods(ns).Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	lt.WaitForNoProcesses(t, pod.UID, 20*time.Second)
}

// TestEnvAndVolumes: env from values (with $(VAR) expansion), Secret,
// ConfigMap and the downward API; envFrom; Secret, ConfigMap, downwardAPI and
// projected service account token volumes as files.
func TestEnvAndVolumes(t *testing.T) {
	ns := cluster.CreateNamespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kube := cluster.Kube.CoreV1()
	if _, err := kube.Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds"}, Data: map[string][]byte{"password": []byte("hunter2"), "API_KEY": []byte("k-123")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: map[string]string{"mode": "fast", "app.conf": "x=1\n"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "runner"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	script := strings.Join([]string{
		`echo "password=$PASSWORD"`,
		`echo "mode=$MODE"`,
		`echo "greeting=$GREETING"`,
		`echo "podname=$POD_NAME ns=$POD_NS ip=$POD_IP sa=$SA"`,
		`echo "apikey=$CFG_API_KEY"`,
		`echo "file-password=$(cat /etc/creds/password)"`,
		`echo "file-conf=$(cat /etc/settings/app.conf)"`,
		`echo "labels=$(cat /etc/podinfo/labels)"`,
		`echo "token-bytes=$(wc -c < /var/run/secrets/kubernetes.io/serviceaccount/token)"`,
		`echo "ca=$(head -1 /var/run/secrets/kubernetes.io/serviceaccount/ca.crt)"`,
		`echo "namespace-file=$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace)"`,
		`cat /var/run/secrets/kubernetes.io/serviceaccount/token > /tmp/token`,
		`cp /tmp/token /out/token`,
	}, "; ")
	pod := shellPod(ns, "env", script)
	pod.Labels = map[string]string{"team": "blue"}
	pod.Spec.ServiceAccountName = "runner"
	c := &pod.Spec.Containers[0]
	c.Env = []corev1.EnvVar{
		{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "password"}}},
		{Name: "MODE", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}, Key: "mode"}}},
		{Name: "GREETING", Value: "hello $(MODE) $$(MODE)"},
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "POD_NS", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
		{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
		{Name: "SA", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.serviceAccountName"}}},
	}
	c.EnvFrom = []corev1.EnvFromSource{{Prefix: "CFG_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}}}}
	out := t.TempDir()
	c.VolumeMounts = []corev1.VolumeMount{
		{Name: "creds", MountPath: "/etc/creds", ReadOnly: true},
		{Name: "settings", MountPath: "/etc/settings"},
		{Name: "podinfo", MountPath: "/etc/podinfo"},
		{Name: "sa", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"},
		{Name: "out", MountPath: "/out"},
	}
	pod.Spec.Volumes = []corev1.Volume{
		{Name: "creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "creds"}}},
		{Name: "settings", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}},
		{Name: "podinfo", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
			{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
		}}}},
		{Name: "sa", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To[int64](3600)}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}, Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}},
		}}}},
		{Name: "out", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: out}}},
	}
	pod = createPod(t, pod)
	p := lt.WaitForPod(t, cluster, ns, pod.Name, 30*time.Second, func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	})
	logs, _, err := cluster.Kubectl(ctx, "", "logs", "-n", ns, pod.Name)
	if err != nil {
		t.Fatal(err)
	}
	if p.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("pod %s:\n%s", p.Status.Phase, logs)
	}
	for _, want := range []string{
		"password=hunter2\n",
		"mode=fast\n",
		"greeting=hello fast $(MODE)\n",
		"podname=env ns=" + ns + " ip=" + p.Status.PodIP + " sa=runner\n",
		"apikey=k-123\n",
		"file-password=hunter2\n",
		"file-conf=x=1\n",
		`labels=team="blue"` + "\n",
		"ca=-----BEGIN CERTIFICATE-----\n",
		"namespace-file=" + ns + "\n",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "token-bytes=0\n") {
		t.Errorf("empty token:\n%s", logs)
	}
	// The projected token is a real one, bound to the pod.
	tok, err := os.ReadFile(filepath.Join(out, "token"))
	if err != nil {
		t.Fatal(err)
	}
	review, err := cluster.Kube.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: strings.TrimSpace(string(tok))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !review.Status.Authenticated || review.Status.User.Username != "system:serviceaccount:"+ns+":runner" {
		t.Errorf("token review %+v", review.Status)
	}
	if pn := review.Status.User.Extra["authentication.kubernetes.io/pod-name"]; len(pn) != 1 || pn[0] != "env" {
		t.Errorf("token not bound to the pod: extra %v", review.Status.User.Extra)
	}
}

// TestMissingSecretWaits: a container whose env needs a Secret that does not
// exist yet waits in CreateContainerConfigError and starts once it exists.
func TestMissingSecretWaits(t *testing.T) {
	ns := cluster.CreateNamespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pod := shellPod(ns, "patient", `echo "token=$TOKEN"`)
	pod.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: "later"}, Key: "token",
	}}}}
	pod = createPod(t, pod)
	p := lt.WaitForPod(t, cluster, ns, pod.Name, 30*time.Second, func(p *corev1.Pod) bool {
		w := containerStatus(p, "main").State.Waiting
		return w != nil && w.Reason == "CreateContainerConfigError"
	})
	if w := containerStatus(p, "main").State.Waiting; !strings.Contains(w.Message, `secret "later" not found`) || p.Status.Phase != corev1.PodPending {
		t.Errorf("phase %s, waiting %+v", p.Status.Phase, w)
	}
	if _, err := cluster.Kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "later"}, Data: map[string][]byte{"token": []byte("now")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	lt.WaitForPod(t, cluster, ns, pod.Name, 40*time.Second, lt.PodPhase(corev1.PodSucceeded))
	logs, _, err := cluster.Kubectl(ctx, "", "logs", "-n", ns, pod.Name)
	if err != nil || logs != "token=now\n" {
		t.Errorf("logs %q, %v", logs, err)
	}
}
