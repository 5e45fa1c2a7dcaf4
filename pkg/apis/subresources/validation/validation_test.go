package validation

import (
	"strings"
	"testing"

	"k8s.io/utils/ptr"

	"github.com/exo-in-go/exo/pkg/apis/subresources"
)

func TestValidateAgentInvocation(t *testing.T) {
	cases := map[string]struct {
		spec      subresources.AgentInvocationSpec
		wantField string // empty: valid
	}{
		"empty is valid":                {},
		"wait at the bound":             {spec: subresources.AgentInvocationSpec{WaitSeconds: subresources.MaxWaitSeconds}},
		"wait over the bound":           {spec: subresources.AgentInvocationSpec{WaitSeconds: subresources.MaxWaitSeconds + 1}, wantField: "spec.waitSeconds"},
		"negative wait":                 {spec: subresources.AgentInvocationSpec{WaitSeconds: -1}, wantField: "spec.waitSeconds"},
		"negative timeout":              {spec: subresources.AgentInvocationSpec{TimeoutSeconds: -1}, wantField: "spec.timeoutSeconds"},
		"input at the bound":            {spec: subresources.AgentInvocationSpec{Input: strings.Repeat("x", MaxInputBytes)}},
		"input over the bound":          {spec: subresources.AgentInvocationSpec{Input: strings.Repeat("x", MaxInputBytes+1)}, wantField: "spec.input"},
		"too many args":                 {spec: subresources.AgentInvocationSpec{Args: make([]string, MaxArgs+1)}, wantField: "spec.args"},
		"one argument that is too long": {spec: subresources.AgentInvocationSpec{Args: []string{"ok", strings.Repeat("x", MaxArgBytes+1)}}, wantField: "spec.args[1]"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			errs := ValidateAgentInvocation(&subresources.AgentInvocation{Spec: tc.spec})
			if tc.wantField == "" {
				if len(errs) != 0 {
					t.Fatalf("want valid, got %v", errs)
				}
				return
			}
			if len(errs) != 1 || errs[0].Field != tc.wantField {
				t.Fatalf("want one error on %s, got %v", tc.wantField, errs)
			}
		})
	}
}

func TestValidateAgentLogOptions(t *testing.T) {
	if errs := ValidateAgentLogOptions(&subresources.AgentLogOptions{Run: "agent-abc12", Follow: true, LimitBytes: ptr.To[int64](1)}); len(errs) != 0 {
		t.Fatalf("valid options refused: %v", errs)
	}
	if errs := ValidateAgentLogOptions(&subresources.AgentLogOptions{Run: "Not_A_Name"}); len(errs) != 1 || errs[0].Field != "run" {
		t.Fatalf("bad run name: got %v", errs)
	}
	if errs := ValidateAgentLogOptions(&subresources.AgentLogOptions{LimitBytes: ptr.To[int64](0)}); len(errs) != 1 || errs[0].Field != "limitBytes" {
		t.Fatalf("zero limitBytes: got %v", errs)
	}
}

func TestValidateAgentAttachOptions(t *testing.T) {
	if errs := ValidateAgentAttachOptions(&subresources.AgentAttachOptions{Stdin: true, Stdout: true, TTY: true}); len(errs) != 0 {
		t.Fatalf("kubectl's attach options refused: %v", errs)
	}
	if errs := ValidateAgentAttachOptions(&subresources.AgentAttachOptions{TTY: true}); len(errs) != 1 {
		t.Fatalf("no streams: got %v", errs)
	}
	if errs := ValidateAgentAttachOptions(&subresources.AgentAttachOptions{Stdout: true, Stderr: true, TTY: true}); len(errs) != 1 || errs[0].Field != "stderr" {
		t.Fatalf("stderr with tty: got %v", errs)
	}
}
