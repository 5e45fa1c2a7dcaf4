package framework

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Main runs a test package against one cluster: it starts the cluster, runs
// setup (what the package installs and starts on it; stop undoes it), runs
// the tests, stops everything and returns the exit code for os.Exit. setup
// gets a context bounded to five minutes, like the cluster's start.
func Main(m *testing.M, setup func(ctx context.Context, c *Cluster) (stop func(), err error)) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting test cluster:", err)
		return 1
	}
	defer func() { _ = c.Stop() }()
	if setup != nil {
		stop, err := setup(ctx, c)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if stop != nil {
			defer stop()
		}
	}
	return m.Run()
}

// CreatePod creates a pod that no node runs, with the given labels and
// owners: enough for admission and API tests, which only need the object.
func (c *Cluster) CreatePod(t testing.TB, ns, name string, labels map[string]string, owners []metav1.OwnerReference) {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, OwnerReferences: owners},
		Spec: corev1.PodSpec{
			Containers:                   []corev1.Container{{Name: "main", Image: "example.invalid/main:1"}},
			AutomountServiceAccountToken: new(false),
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating pod %s: %v", name, err)
	}
}
