package agent

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	agentletconfig "github.com/exo-in-go/exo/pkg/agentlet/config"
	"github.com/exo-in-go/exo/pkg/agentlet/endpoint"
	"github.com/exo-in-go/exo/pkg/agentlet/entrypoint"
	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/controllers/ctrlutil"
	"github.com/exo-in-go/exo/pkg/runtimes"
)

// Names inside the Agent pod (docs/agentlet.md, "The pod").
const (
	// ContainerAgent runs the runtime's image (the CLI's, or the user's for
	// Custom) with the agentlet as its entrypoint: the agentlet serves its API
	// and starts the CLI from that image's own filesystem.
	ContainerAgent = "agent"
	// InitContainerAgentlet copies the static agentlet from its own image into
	// the shared volume the agent container starts it from.
	InitContainerAgentlet = "install-agentlet"
	// Component is the app.kubernetes.io/component of Agent pods.
	Component = "agent"
	// AgentletEntrypoint is where the agent container finds the agentlet.
	AgentletEntrypoint = agentletBinPath + "/agentlet"

	agentletBinVolume = "agentlet-bin"
	agentletBinPath   = "/agentkube/bin"
	workspaceVolume   = "workspace"
	workspacePath     = "/workspace"
	dataVolume        = "agentlet-data"
	dataPath          = "/var/lib/agentlet"
	// The root filesystem is read-only; the CLIs write their configuration
	// and caches under HOME and scratch files under /tmp.
	homeVolume = "home"
	homePath   = "/home/agent"
	tmpVolume  = "tmp"
	tmpPath    = "/tmp"
	// runAsUser is the agent's user whatever the image says (many runtime
	// images default to root): the nonroot user of distroless images.
	runAsUser int64 = 65532
)

// podInputs is everything the pod is built from; its hash decides whether
// the running pod is still what the Agent asks for.
type podInputs struct {
	Agent        *agentkubev1alpha1.Agent
	RuntimeImage string
	Images       runtimes.Images
	// TLSSecret names the agentlet's certificate Secret; empty: plain HTTP.
	TLSSecret string
}

// buildPod returns the desired pod, without owner reference.
func buildPod(in podInputs) *corev1.Pod {
	a := in.Agent
	spec := a.Spec
	labels := ctrlutil.ManagedLabels(Component, a.Name)
	labels[ctrlutil.LabelAgent] = ctrlutil.LabelValue(a.Name)
	if group, ok := a.Labels["agentkube.io/agentgroup"]; ok {
		labels["agentkube.io/agentgroup"] = group
	}

	// The agentlet is the agent container's entrypoint and starts the runtime
	// CLI as its child, so its configuration and the runtime's share one
	// environment. The agentlet removes AGENTLET_* from the CLI's environment
	// and keeps its own unreadable (pkg/agentlet/entrypoint), so its token
	// never reaches the CLI.
	agentletEnv := []corev1.EnvVar{
		{Name: agentletconfig.EnvListenAddress, Value: ":" + strconv.Itoa(agentletconfig.DefaultPort)},
		{Name: agentletconfig.EnvToken, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: endpoint.TokenSecretName(a.Name)},
			Key:                  endpoint.TokenSecretKey,
		}}},
		{Name: agentletconfig.EnvRuntime, Value: string(spec.Runtime)},
		{Name: agentletconfig.EnvWorkDir, Value: workspacePath},
		{Name: agentletconfig.EnvDataDir, Value: dataPath},
	}
	if g := spec.Goal; g != nil {
		if g.ConfigMapKeyRef != nil {
			agentletEnv = append(agentletEnv, corev1.EnvVar{Name: agentletconfig.EnvGoal, ValueFrom: &corev1.EnvVarSource{
				ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: g.ConfigMapKeyRef.Name},
					Key:                  g.ConfigMapKeyRef.Key,
				},
			}})
		} else {
			agentletEnv = append(agentletEnv, corev1.EnvVar{Name: agentletconfig.EnvGoal, Value: g.Inline})
		}
	}
	agentletEnv = append(agentletEnv, modelEnv(spec)...)
	if len(spec.Tools) > 0 {
		names := make([]string, 0, len(spec.Tools))
		for _, t := range spec.Tools {
			names = append(names, t.Name)
		}
		agentletEnv = append(agentletEnv, corev1.EnvVar{Name: agentletconfig.EnvTools, Value: agentletconfig.EncodeList(names)})
	}
	if len(spec.Command) > 0 {
		agentletEnv = append(agentletEnv, corev1.EnvVar{Name: agentletconfig.EnvCommand, Value: agentletconfig.EncodeList(spec.Command)})
	}
	if len(spec.Args) > 0 {
		agentletEnv = append(agentletEnv, corev1.EnvVar{Name: agentletconfig.EnvArgs, Value: agentletconfig.EncodeList(spec.Args)})
	}

	// The runtime's environment: the identity of the Agent, its model key and
	// the user's variables, which come last so they win (HOME included).
	runtimeEnv := []corev1.EnvVar{
		{Name: "HOME", Value: homePath},
		{Name: "AGENT_NAME", Value: a.Name},
		{Name: "AGENT_NAMESPACE", Value: a.Namespace},
		{Name: "AGENT_RUNTIME", Value: string(spec.Runtime)},
		{Name: "AGENT_MODE", Value: string(spec.Mode)},
	}
	if spec.AgentToken != nil {
		runtimeEnv = append(runtimeEnv, corev1.EnvVar{
			Name: runtimes.TokenEnv(spec.Runtime),
			// A reference, never a copy: the key stays in its Secret and
			// rotating it only needs a pod restart.
			ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: spec.AgentToken.SecretRef.Name},
				Key:                  spec.AgentToken.SecretRef.Key,
			}},
		})
	}
	runtimeEnv = append(runtimeEnv, spec.Env...)

	securityContext := &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}

	var probeScheme corev1.URIScheme // the default, HTTP; left unset so plain pods keep their spec hash
	mounts := []corev1.VolumeMount{
		{Name: workspaceVolume, MountPath: workspacePath},
		{Name: dataVolume, MountPath: dataPath},
		{Name: homeVolume, MountPath: homePath},
		{Name: tmpVolume, MountPath: tmpPath},
		{Name: agentletBinVolume, MountPath: agentletBinPath, ReadOnly: true},
	}
	emptyDir := func(name string) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	}
	volumes := []corev1.Volume{
		emptyDir(agentletBinVolume), emptyDir(workspaceVolume), emptyDir(dataVolume), emptyDir(homeVolume), emptyDir(tmpVolume),
	}
	if in.TLSSecret != "" {
		// The agentlet serves TLS only, with the certificate of the Agent's name;
		// it reloads the pair when the kubelet refreshes the volume after a renewal.
		// The pod spec, which only the manager may change, is what tells clients
		// to use TLS (pkg/agentlet/endpoint.ServesTLS).
		agentletEnv = append(agentletEnv,
			corev1.EnvVar{Name: agentletconfig.EnvTLSCertFile, Value: endpoint.TLSMountPath + "/" + corev1.TLSCertKey},
			corev1.EnvVar{Name: agentletconfig.EnvTLSKeyFile, Value: endpoint.TLSMountPath + "/" + corev1.TLSPrivateKeyKey},
		)
		mounts = append(mounts, corev1.VolumeMount{Name: endpoint.TLSVolume, MountPath: endpoint.TLSMountPath, ReadOnly: true})
		volumes = append(volumes, corev1.Volume{Name: endpoint.TLSVolume, VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: in.TLSSecret},
		}})
		probeScheme = corev1.URISchemeHTTPS
	}

	// The installer runs the agentlet image's own entrypoint (the agentlet)
	// with the install command; it needs nothing but the shared volume.
	install := corev1.Container{
		Name:            InitContainerAgentlet,
		Image:           in.Images.Agentlet(),
		ImagePullPolicy: corev1.PullIfNotPresent,
		Args:            []string{entrypoint.InstallCommand, AgentletEntrypoint},
		VolumeMounts:    []corev1.VolumeMount{{Name: agentletBinVolume, MountPath: agentletBinPath}},
		SecurityContext: securityContext,
	}
	agent := corev1.Container{
		Name:            ContainerAgent,
		Image:           in.RuntimeImage,
		ImagePullPolicy: corev1.PullIfNotPresent,
		// The image's own entrypoint is replaced; the agentlet starts the CLI
		// (the adapter's command, or spec.command for Custom) from the image.
		Command: []string{AgentletEntrypoint},
		Env:     append(agentletEnv, runtimeEnv...),
		Ports: []corev1.ContainerPort{{
			Name: agentletconfig.PortName, ContainerPort: agentletconfig.DefaultPort, Protocol: corev1.ProtocolTCP,
		}},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: "/healthz", Port: intstr.FromString(agentletconfig.PortName), Scheme: probeScheme,
			}},
			PeriodSeconds: 5,
		},
		VolumeMounts:    mounts,
		SecurityContext: securityContext,
	}
	if spec.Resources != nil {
		agent.Resources = *spec.Resources
		// The same budget for the installer keeps the pod's QoS class what
		// the user asked for (init containers count towards it).
		install.Resources = *spec.Resources
	}

	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      a.Name,
			Namespace: a.Namespace,
			Labels:    labels,
		},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{install},
			Containers:     []corev1.Container{agent},
			RestartPolicy:  corev1.RestartPolicyAlways,
			// Above the agentlet's SIGTERM→SIGKILL grace (5s), so a run is
			// cancelled cleanly when the pod goes.
			TerminationGracePeriodSeconds: ptr.To[int64](30),
			// What Pod Security "restricted" asks for, whatever the runtime
			// image's USER is; fsGroup makes the volumes the agent's.
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				RunAsUser:      ptr.To(runAsUser),
				RunAsGroup:     ptr.To(runAsUser),
				FSGroup:        ptr.To(runAsUser),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			// Agents get no cluster credentials unless a Tool grants them.
			AutomountServiceAccountToken: ptr.To(false),
			// Service links would add every Service of the namespace to the
			// runtime's environment.
			EnableServiceLinks: ptr.To(false),
			Volumes:            volumes,
		},
	}
}
