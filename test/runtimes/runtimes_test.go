package runtimes

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/test/fakemodel"
)

// killGrace is the agentlet's SIGTERM→SIGKILL delay (AGENTLET_KILL_GRACE_PERIOD's default).
const killGrace = 5 * time.Second

// downTimeout bounds the runs against a model server that is gone: those
// of the CLIs that retry without end time out after it, the others must
// have given up by themselves before it.
const downTimeout = 30 * time.Second

// runtimeCase is what one CLI does against the fake model.
type runtimeCase struct {
	runtime agentkubev1alpha1.Runtime
	// path of its model calls and where it puts the key.
	path, auth string
	// calls are the model calls of a run that scripts one shell command:
	// "results=N calls=[…]" each (tool results the request carried, tools
	// the reply called), sorted.
	calls []string
	// otherHosts are hosts besides the model it is known to try, with no
	// switch to stop it (docs/agentlet.md).
	otherHosts []string
	// With the model server gone: how the run ends and what its output says.
	// A run that ends by itself must do so before downTimeout; one that
	// retries without end is given downTimeout/2.
	downPhase, downOutput string
}

var cases = []runtimeCase{
	{
		runtime: agentkubev1alpha1.RuntimeClaudeCode, path: "/v1/messages", auth: "x-api-key",
		calls:     []string{"results=0 calls=[Bash]", "results=1 calls=[]"},
		downPhase: agentkubev1alpha1.AgentRunPhaseFailed, downOutput: "Connection refused",
	},
	{
		runtime: agentkubev1alpha1.RuntimeCodex, path: "/v1/responses", auth: "authorization",
		calls: []string{"results=0 calls=[exec_command]", "results=1 calls=[]"},
		// It reconnects until stopped, whatever its retry settings.
		downPhase: agentkubev1alpha1.AgentRunPhaseTimedOut, downOutput: "Reconnecting",
	},
	{
		runtime: agentkubev1alpha1.RuntimeOpenCode, path: "/v1/chat/completions", auth: "authorization",
		// The first call, without tools, names the session.
		calls:     []string{"results=0 calls=[]", "results=0 calls=[bash]", "results=1 calls=[]"},
		downPhase: agentkubev1alpha1.AgentRunPhaseTimedOut, downOutput: "Cannot connect to API",
	},
	{
		runtime: agentkubev1alpha1.RuntimeGemini, path: "/v1beta/models/" + modelName + ":streamGenerateContent", auth: "x-goog-api-key",
		calls:     []string{"results=0 calls=[run_shell_command]", "results=1 calls=[]"},
		downPhase: agentkubev1alpha1.AgentRunPhaseFailed, downOutput: "Error when talking to Gemini API",
	},
	{
		runtime: agentkubev1alpha1.RuntimeCline, path: "/v1/chat/completions", auth: "authorization",
		// Yolo mode ends only when the model calls submit_and_exit, which the fake model does.
		calls:      []string{"results=0 calls=[run_commands]", "results=1 calls=[submit_and_exit]"},
		otherHosts: []string{"data.cline.bot:443"},
		// It prints "Cannot connect to API" only when stopped gracefully, which
		// takes it longer than the kill grace: the run's status says what happened.
		downPhase: agentkubev1alpha1.AgentRunPhaseTimedOut, downOutput: "",
	},
}

// TestRuntimes: for each CLI, an Agent on the localnode invoked with `kubectl
// agent invoke` runs the real CLI against the fake model: the model asks for
// a shell command, the CLI runs it (its file appears in the workspace), and
// the run returns the model's deterministic answer. The model server saw
// exactly the expected calls; the egress proxy saw no attempt to reach any
// other host (but the ones the CLI has no switch for). With the model server
// gone, the next run fails or times out within its timeout, not later.
func TestRuntimes(t *testing.T) {
	for _, tc := range cases {
		t.Run(string(tc.runtime), func(t *testing.T) {
			t.Parallel()
			a := newAgent(t, tc.runtime)
			marker := "ran-" + strings.ToLower(string(tc.runtime)) + "-" + randomHex(t)
			prompt := "Write the marker file, please.\n" + fakemodel.ShellDirective + " echo " + marker + " > marker.txt"

			st := a.invoke(t, prompt, 45)
			if st.Phase != agentkubev1alpha1.AgentRunPhaseSucceeded || !strings.Contains(st.OutputTail, fakemodel.ReplyText(prompt)) {
				t.Fatalf("run %s: phase %s (%s), output:\n%s\nwant Succeeded with %q", st.RunName, st.Phase, st.Message, st.OutputTail, fakemodel.ReplyText(prompt))
			}
			if got := a.workspaceFile(t, "marker.txt"); got != marker+"\n" {
				t.Errorf("the scripted command wrote %q, want %q", got, marker+"\n")
			}
			checkModelCalls(t, tc, a.model.Requests(), prompt)

			// The model server goes away: the run must end within its timeout.
			a.modelServer.Close()
			timeout := downTimeout
			if tc.downPhase == agentkubev1alpha1.AgentRunPhaseTimedOut {
				timeout /= 2
			}
			st = a.invoke(t, "Is anyone there, model?", int(timeout/time.Second))
			if st.Phase != tc.downPhase || !strings.Contains(st.OutputTail, tc.downOutput) {
				t.Errorf("model down: phase %s (%s), output:\n%s\nwant %s with %q", st.Phase, st.Message, st.OutputTail, tc.downPhase, tc.downOutput)
			}
			if st.Phase == agentkubev1alpha1.AgentRunPhaseTimedOut && !strings.Contains(st.Message, "timeout") {
				t.Errorf("model down: the timed-out run's message %q does not say so", st.Message)
			}
			if st.StartTime == nil || st.CompletionTime == nil {
				t.Fatalf("model down: run %s has not ended: %+v", st.RunName, st)
			}
			// metav1.Time has whole seconds: one more of slack.
			if took, limit := st.CompletionTime.Sub(st.StartTime.Time), timeout+killGrace+time.Second; took > limit {
				t.Errorf("model down: the run took %s, more than its timeout and the kill grace (%s)", took, limit)
			}
			if got := a.proxy.attempted(); !slices.Equal(got, tc.otherHosts) {
				t.Errorf("hosts tried through the egress proxy: %q, want %q", got, tc.otherHosts)
			}
		})
	}
}

// checkModelCalls compares the fake server's log with the calls expected of
// a scripted run.
func checkModelCalls(t *testing.T, tc runtimeCase, log []fakemodel.Request, prompt string) {
	t.Helper()
	var got []string
	for _, r := range log {
		got = append(got, fmt.Sprintf("results=%d calls=%v", r.ToolResults, r.ToolCalls))
		if r.Method != "POST" || r.Path != tc.path || r.Status != 200 || r.Auth != tc.auth || r.Model != modelName || !r.Stream || r.Prompt != prompt {
			t.Errorf("model call %d: %s %s status %d auth %q model %q stream %v prompt %q;\nwant POST %s 200 auth %q model %q streamed, prompt %q",
				r.Seq, r.Method, r.Path, r.Status, r.Auth, r.Model, r.Stream, r.Prompt, tc.path, tc.auth, modelName, prompt)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, tc.calls) {
		t.Errorf("model calls %q, want %q", got, tc.calls)
	}
}

func randomHex(t testing.TB) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}
