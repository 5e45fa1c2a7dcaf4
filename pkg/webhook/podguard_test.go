package webhook

import (
	"encoding/json"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

func agentPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "reviewer", Namespace: "team-a",
			Labels: map[string]string{LabelManagedBy: ManagedByValue, LabelAgent: "reviewer", "team": "a"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "agentkube.io/v1alpha1", Kind: "Agent", Name: "reviewer", UID: "u1",
			}},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "agentlet", Image: "agentlet:1"}}},
	}
}

func podUpdate(t *testing.T, user string, oldPod, newPod *corev1.Pod) admission.Request {
	t.Helper()
	raw := func(p *corev1.Pod) []byte {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		Resource: podsResource, Operation: admissionv1.Update, Namespace: oldPod.Namespace, Name: oldPod.Name,
		UserInfo:  authenticationv1.UserInfo{Username: user, Groups: []string{DefaultBreakGlassGroup}},
		OldObject: runtime.RawExtension{Raw: raw(oldPod)}, Object: runtime.RawExtension{Raw: raw(newPod)},
	}}
}

func TestPodGuard(t *testing.T) {
	g := &PodGuard{ManagerServiceAccount: DefaultManagerServiceAccount, GarbageCollectorUsers: DefaultGarbageCollectorUsers}
	gc := DefaultGarbageCollectorUsers[0]
	for _, tc := range []struct {
		name    string
		user    string
		old     func(*corev1.Pod)
		change  func(*corev1.Pod)
		allowed bool
		mention string
	}{
		{"label removed", "mallory", nil, func(p *corev1.Pod) { delete(p.Labels, LabelManagedBy) }, false, "label " + LabelManagedBy},
		{"agent relabelled", "mallory", nil, func(p *corev1.Pod) { p.Labels[LabelAgent] = "other" }, false, "label " + LabelAgent},
		{"tool label added", "mallory", nil, func(p *corev1.Pod) { p.Labels[LabelTool] = "db" }, false, "label " + LabelTool},
		{"owner removed", "mallory", nil, func(p *corev1.Pod) { p.OwnerReferences = nil }, false, "owner references"},
		{"image swapped", "mallory", nil, func(p *corev1.Pod) { p.Spec.Containers[0].Image = "evil:1" }, false, "spec"},
		{"other label", "mallory", nil, func(p *corev1.Pod) { p.Labels["team"] = "b" }, true, ""},
		{"foreign owner added", "mallory", nil, func(p *corev1.Pod) {
			p.OwnerReferences = append(p.OwnerReferences, metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "x", UID: "u2"})
		}, true, ""},
		{"manager", DefaultManagerServiceAccount, nil, func(p *corev1.Pod) { p.Labels = nil; p.OwnerReferences = nil }, true, ""},
		{"break-glass is not exempt", "oncall", nil, func(p *corev1.Pod) { delete(p.Labels, LabelAgent) }, false, "label"},
		{"garbage collector orphans", gc, nil, func(p *corev1.Pod) { p.OwnerReferences = nil }, true, ""},
		{"garbage collector may not relabel", gc, nil, func(p *corev1.Pod) { p.OwnerReferences = nil; delete(p.Labels, LabelAgent) }, false, "label"},
		{"garbage collector may not add owners", gc, nil, func(p *corev1.Pod) {
			p.OwnerReferences = append(p.OwnerReferences, metav1.OwnerReference{APIVersion: "agentkube.io/v1alpha1", Kind: "Agent", Name: "x", UID: "u3"})
		}, false, "owner references"},
		{"unmanaged pod", "mallory", func(p *corev1.Pod) { p.Labels = map[string]string{"app": "web"}; p.OwnerReferences = nil },
			func(p *corev1.Pod) { p.Labels[LabelAgent] = "x"; p.Spec.Containers[0].Image = "other:1" }, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			oldPod := agentPod()
			if tc.old != nil {
				tc.old(oldPod)
			}
			newPod := oldPod.DeepCopy()
			tc.change(newPod)
			resp := g.Handle(t.Context(), podUpdate(t, tc.user, oldPod, newPod))
			if resp.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v (%v)", resp.Allowed, tc.allowed, resp.Result)
			}
			if !tc.allowed && !strings.Contains(resp.Result.Message, tc.mention) {
				t.Fatalf("message %q does not mention %q", resp.Result.Message, tc.mention)
			}
		})
	}
}
