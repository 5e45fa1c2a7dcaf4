package workload

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// Spec describes the Deployment and Service of one workload object.
type Spec struct {
	Name, Namespace, Component string
	Image                      string
	Args                       []string
	Env                        []corev1.EnvVar
	Replicas                   int32
	// Port is the container port, named "http"; ServicePort the Service's.
	Port, ServicePort int32
	ServiceType       corev1.ServiceType
}

// Build returns the Deployment and Service for s.
func Build(s Spec) Desired {
	labels := Labels(s.Component, s.Name)
	selector := SelectorLabels(s.Component, s.Name)
	if s.ServicePort == 0 {
		s.ServicePort = s.Port
	}
	if s.ServiceType == "" {
		s.ServiceType = corev1.ServiceTypeClusterIP
	}
	probe := &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("http")}},
		PeriodSeconds: 10,
	}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(s.Replicas),
			Selector: &metav1.LabelSelector{MatchLabels: selector},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					AutomountServiceAccountToken: ptr.To(false),
					EnableServiceLinks:           ptr.To(false),
					Containers: []corev1.Container{{
						Name:            s.Component,
						Image:           s.Image,
						ImagePullPolicy: corev1.PullIfNotPresent,
						Args:            s.Args,
						Env:             s.Env,
						Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: s.Port, Protocol: corev1.ProtocolTCP}},
						ReadinessProbe:  probe,
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr.To(false),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
					}},
				},
			},
		},
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace, Labels: labels},
		Spec: corev1.ServiceSpec{
			Type:     s.ServiceType,
			Selector: selector,
			Ports: []corev1.ServicePort{{
				Name: "http", Port: s.ServicePort, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP,
			}},
		},
	}
	return Desired{Deployment: dep, Service: svc}
}

// SecretEnv references a Secret key from an env var: credentials are
// referenced, never copied into the Deployment.
func SecretEnv(name, secret, key string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key,
	}}}
}
