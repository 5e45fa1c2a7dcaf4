package artifacts

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// resourcePolicyKeep is the one field the chart adds to artifacts/: Helm must never
// delete a CRD.
const resourcePolicyKeep = "helm.sh/resource-policy"

// TestChartsRenderArtifacts renders each chart with its default values (and the exo-app
// chart with its ingress on) and requires exactly the objects of artifacts/, equal field
// by field after parsing; a drift on either side names the object and the field.
func TestChartsRenderArtifacts(t *testing.T) {
	cases := []struct {
		chart string
		set   []string
		want  []string
	}{{
		chart: "agentkube",
		want:  []string{repoPath("artifacts", "crds"), repoPath("artifacts", "manager")},
	}, {
		chart: "exo-app",
		want: []string{
			repoPath("artifacts", "platform", "namespace.yaml"),
			repoPath("artifacts", "platform", "config.yaml"),
			repoPath("artifacts", "platform", "deployment.yaml"),
		},
	}, {
		chart: "exo-app",
		set:   []string{"ingress.enabled=true"},
		want:  []string{repoPath("artifacts", "platform")},
	}}
	for _, tc := range cases {
		t.Run(strings.Join(append([]string{tc.chart}, tc.set...), " "), func(t *testing.T) {
			t.Parallel()
			wantObjs, err := readManifestFiles(tc.want...)
			if err != nil {
				t.Fatal(err)
			}
			want, err := index(wantObjs)
			if err != nil {
				t.Fatal(err)
			}
			got, err := renderChartObjects(t.Context(), tc.chart, tc.set...)
			if err != nil {
				t.Fatal(err)
			}
			for _, problem := range compareSets(want, got) {
				t.Error(problem)
			}
		})
	}
}

// compareSets returns every difference between the artifacts and the rendered chart.
func compareSets(artifacts, chart objectSet) []string {
	var problems []string
	for _, k := range artifacts.keys() {
		if _, ok := chart[k]; !ok {
			problems = append(problems, fmt.Sprintf("%s (%s): not rendered by the chart", k, artifacts[k].source))
		}
	}
	for _, k := range chart.keys() {
		a, ok := artifacts[k]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: rendered by the chart but in no file of artifacts/", k))
			continue
		}
		rendered := chart[k].content
		if rendered["kind"] == "CustomResourceDefinition" {
			var err error
			if rendered, err = withoutKeepPolicy(rendered); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", k, err))
				continue
			}
		}
		for _, d := range diff("", a.content, rendered) {
			problems = append(problems, fmt.Sprintf("%s (%s ↔ chart): %s", k, filepath.Base(a.source), d))
		}
	}
	return problems
}

// withoutKeepPolicy checks that a rendered CRD is kept by Helm and returns a copy without
// that annotation (and without an annotations map it leaves empty).
func withoutKeepPolicy(crd map[string]any) (map[string]any, error) {
	md, _ := crd["metadata"].(map[string]any)
	ann, _ := md["annotations"].(map[string]any)
	if ann[resourcePolicyKeep] != "keep" {
		return nil, fmt.Errorf("metadata.annotations[%q]: want \"keep\", got %v", resourcePolicyKeep, ann[resourcePolicyKeep])
	}
	newAnn := map[string]any{}
	for k, v := range ann {
		if k != resourcePolicyKeep {
			newAnn[k] = v
		}
	}
	newMD := map[string]any{}
	for k, v := range md {
		newMD[k] = v
	}
	if len(newAnn) == 0 {
		delete(newMD, "annotations")
	} else {
		newMD["annotations"] = newAnn
	}
	out := map[string]any{}
	for k, v := range crd {
		out[k] = v
	}
	out["metadata"] = newMD
	return out, nil
}

// TestManifestCopiesUpToDate: the chart's copies of the value-free manifests are what
// hack/update-manifests.sh makes of artifacts/ now.
func TestManifestCopiesUpToDate(t *testing.T) {
	t.Parallel()
	cmd := exec.CommandContext(t.Context(), repoPath("hack", "update-manifests.sh"), "--verify")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/update-manifests.sh --verify: %v\n%s", err, out)
	}
}

// TestChartValues: the documented values change what they say they change.
func TestChartValues(t *testing.T) {
	t.Run("agentkube managed mode, images and switches", func(t *testing.T) {
		t.Parallel()
		got, err := renderChartObjects(t.Context(), "agentkube",
			"manager.managed=true", "manager.baseURL=https://exo.corp.example",
			"manager.clusterID=prod-eu-1", "manager.replicas=3", "manager.authToken=exo_dpl_0123",
			"image.registry=registry.corp.example/mirror/", "image.manager.tag=v9.9.9",
			"image.agentlet.tag=v9.9.8", "image.pullSecrets[0].name=regcred",
			"crds.install=false", "createNamespace=false")
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range got.keys() {
			if kind := got[k].content["kind"]; kind == "CustomResourceDefinition" || kind == "Namespace" {
				t.Errorf("%s rendered with crds.install=false, createNamespace=false", k)
			}
		}
		dep := lookup(t, got, "Deployment", "agentkube-system/agentkube-manager")
		spec := field(dep, "spec").(map[string]any)
		if spec["replicas"] != float64(3) {
			t.Errorf("spec.replicas: want 3, got %v", spec["replicas"])
		}
		pod := field(dep, "spec", "template", "spec").(map[string]any)
		if fmt.Sprint(pod["imagePullSecrets"]) != "[map[name:regcred]]" {
			t.Errorf("imagePullSecrets: got %v", pod["imagePullSecrets"])
		}
		ctr := pod["containers"].([]any)[0].(map[string]any)
		if want := "registry.corp.example/mirror/agentkube-manager:v9.9.9"; ctr["image"] != want {
			t.Errorf("image: want %q, got %v", want, ctr["image"])
		}
		wantEnv := map[string]string{
			"AGENTKUBE_MANAGED":        "true",
			"AGENTKUBE_BASE_URL":       "https://exo.corp.example",
			"AGENTKUBE_CLUSTER_ID":     "prod-eu-1",
			"AGENTKUBE_IMAGE_REGISTRY": "registry.corp.example/mirror",
			"AGENTKUBE_IMAGE_AGENTLET": "registry.corp.example/mirror/agentkube-agentlet:v9.9.8",
		}
		envs := map[string]any{}
		for _, e := range ctr["env"].([]any) {
			e := e.(map[string]any)
			envs[e["name"].(string)] = e["value"]
		}
		for name, want := range wantEnv {
			if envs[name] != want {
				t.Errorf("env %s: want %q, got %v", name, want, envs[name])
			}
		}
		secret := lookup(t, got, "Secret", "agentkube-system/agentkube-auth")
		if tok := field(secret, "stringData", "token"); tok != "exo_dpl_0123" {
			t.Errorf("Secret agentkube-auth token: got %v", tok)
		}
	})
	t.Run("exo-app existing secret and config", func(t *testing.T) {
		t.Parallel()
		got, err := renderChartObjects(t.Context(), "exo-app",
			"existingSecret=exo-prod", "config.EXO_BASE_URL=https://exo.corp.example",
			"config.EXO_PORT=8000", "replicas=2")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := got["Secret exo/exo-app (v1)"]; ok {
			t.Error("Secret exo/exo-app rendered although existingSecret is set")
		}
		cm := lookup(t, got, "ConfigMap", "exo/exo-app")
		if v := field(cm, "data", "EXO_BASE_URL"); v != "https://exo.corp.example" {
			t.Errorf("ConfigMap EXO_BASE_URL: got %v", v)
		}
		dep := lookup(t, got, "Deployment", "exo/exo-app")
		ctr := field(dep, "spec", "template", "spec", "containers").([]any)[0].(map[string]any)
		if ref := ctr["envFrom"].([]any)[1].(map[string]any)["secretRef"].(map[string]any)["name"]; ref != "exo-prod" {
			t.Errorf("envFrom secretRef: want exo-prod, got %v", ref)
		}
		if port := ctr["ports"].([]any)[0].(map[string]any)["containerPort"]; port != float64(8000) {
			t.Errorf("containerPort: want 8000, got %v", port)
		}
		svc := lookup(t, got, "Service", "exo/exo-app")
		if port := field(svc, "spec", "ports").([]any)[0].(map[string]any)["port"]; port != float64(8000) {
			t.Errorf("Service port: want 8000, got %v", port)
		}
	})
}

// lookup finds a rendered object by kind and namespace/name.
func lookup(t *testing.T, set objectSet, kind, name string) map[string]any {
	t.Helper()
	for _, k := range set.keys() {
		if strings.HasPrefix(k, kind+" "+name+" (") {
			return set[k].content
		}
	}
	t.Fatalf("%s %s not rendered; rendered: %v", kind, name, set.keys())
	return nil
}

// field walks nested maps.
func field(obj map[string]any, path ...string) any {
	var v any = obj
	for _, p := range path {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	return v
}
