package agent

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	agentletconfig "github.com/exo-in-go/exo/pkg/agentlet/config"
	"github.com/exo-in-go/exo/pkg/agentlet/endpoint"
	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/controllers/ctrlutil"
	"github.com/exo-in-go/exo/pkg/runtimes"
)

// Names inside the Agent pod.
const (
	// ContainerAgentlet runs the agentlet, which executes runs.
	ContainerAgentlet = "agentlet"
	// ContainerRuntime holds the runtime CLI's image.
	ContainerRuntime = "runtime"
	// Component is the app.kubernetes.io/component of Agent pods.
	Component = "agent"

	workspaceVolume = "workspace"
	workspacePath   = "/workspace"
	dataVolume      = "agentlet-data"
	dataPath        = "/var/lib/agentlet"
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

	// The agentlet executes the runtime CLI (as a child process on a dev
	// node, from its own image in a cluster), so the runtime's configuration
	// and its API key go onto the agentlet container. The agentlet removes
	// AGENTLET_* from the runtime's environment, so its own token never
	// reaches the CLI.
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
	if m := spec.Model; m != nil {
		agentletEnv = append(agentletEnv, corev1.EnvVar{Name: agentletconfig.EnvModel, Value: m.Name})
		if m.Provider != "" {
			agentletEnv = append(agentletEnv, corev1.EnvVar{Name: agentletconfig.EnvModelProvider, Value: m.Provider})
		}
	}
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

	// Both containers see the same runtime environment: the identity of the
	// Agent, its token and the user's variables.
	runtimeEnv := []corev1.EnvVar{
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
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
	workspaceMount := corev1.VolumeMount{Name: workspaceVolume, MountPath: workspacePath}

	var probeScheme corev1.URIScheme // the default, HTTP; left unset so plain pods keep their spec hash
	agentletMounts := []corev1.VolumeMount{workspaceMount, {Name: dataVolume, MountPath: dataPath}}
	volumes := []corev1.Volume{
		{Name: workspaceVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: dataVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	}
	if in.TLSSecret != "" {
		// The agentlet serves TLS only, with the certificate of the Agent's name;
		// it reloads the pair when the kubelet refreshes the volume after a renewal.
		// Only the agentlet container mounts it. The pod spec, which only the
		// manager may change, is what tells clients to use TLS
		// (pkg/agentlet/endpoint.ServesTLS).
		agentletEnv = append(agentletEnv,
			corev1.EnvVar{Name: agentletconfig.EnvTLSCertFile, Value: endpoint.TLSMountPath + "/" + corev1.TLSCertKey},
			corev1.EnvVar{Name: agentletconfig.EnvTLSKeyFile, Value: endpoint.TLSMountPath + "/" + corev1.TLSPrivateKeyKey},
		)
		agentletMounts = append(agentletMounts, corev1.VolumeMount{Name: endpoint.TLSVolume, MountPath: endpoint.TLSMountPath, ReadOnly: true})
		volumes = append(volumes, corev1.Volume{Name: endpoint.TLSVolume, VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: in.TLSSecret},
		}})
		probeScheme = corev1.URISchemeHTTPS
	}

	agentlet := corev1.Container{
		Name:            ContainerAgentlet,
		Image:           in.Images.Agentlet(),
		ImagePullPolicy: corev1.PullIfNotPresent,
		Env:             append(agentletEnv, runtimeEnv...),
		Ports: []corev1.ContainerPort{{
			Name: agentletconfig.PortName, ContainerPort: agentletconfig.DefaultPort, Protocol: corev1.ProtocolTCP,
		}},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: "/healthz", Port: intstr.FromString(agentletconfig.PortName), Scheme: probeScheme,
			}},
			PeriodSeconds: 5,
		},
		VolumeMounts:    agentletMounts,
		SecurityContext: securityContext,
	}
	runtime := corev1.Container{
		Name:            ContainerRuntime,
		Image:           in.RuntimeImage,
		ImagePullPolicy: corev1.PullIfNotPresent,
		Env:             runtimeEnv,
		VolumeMounts:    []corev1.VolumeMount{workspaceMount},
		SecurityContext: securityContext,
	}
	if spec.Resources != nil {
		runtime.Resources = *spec.Resources
		// The agentlet runs the CLI, so it gets the same budget.
		agentlet.Resources = *spec.Resources
	}

	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      a.Name,
			Namespace: a.Namespace,
			Labels:    labels,
		},
		Spec: corev1.PodSpec{
			Containers:    []corev1.Container{agentlet, runtime},
			RestartPolicy: corev1.RestartPolicyAlways,
			// Above the agentlet's SIGTERM→SIGKILL grace (5s), so a run is
			// cancelled cleanly when the pod goes.
			TerminationGracePeriodSeconds: ptr.To[int64](30),
			// The agentlet reaps the runtime's orphans only when it can see
			// them; sharing the namespace also lets attach reach the runtime.
			ShareProcessNamespace: ptr.To(true),
			// Agents get no cluster credentials unless a Tool grants them.
			AutomountServiceAccountToken: ptr.To(false),
			// Service links would add every Service of the namespace to the
			// runtime's environment.
			EnableServiceLinks: ptr.To(false),
			Volumes:            volumes,
		},
	}
}
