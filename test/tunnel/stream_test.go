package tunnel_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	agentkubev1alpha1 "github.com/exo-in-go/exo/pkg/apis/agentkube/v1alpha1"
	"github.com/exo-in-go/exo/pkg/connect"
	"github.com/exo-in-go/exo/test/poll"
)

// pipeOutput stands in for the agentlet's followed run output (there is no
// node here): the test writes what the run prints.
type pipeOutput struct {
	r      *io.PipeReader
	opened chan string // the run id the connector followed
}

func (p *pipeOutput) FollowRunOutput(_ context.Context, _ *agentkubev1alpha1.Agent, runID string) (io.ReadCloser, error) {
	p.opened <- runID
	return p.r, nil
}

// An invocation from the dashboard with Accept: application/x-ndjson sees
// the run's output line by line while the run is still going, through the
// tunnel's flow-controlled output stream, and then its result.
func TestInvokeStreamsOutput(t *testing.T) {
	testInvokeStreams(t, func(p *platform) string { return p.url() })
}

// The same through nginx configured like the seed's ingress (proxy
// buffering on, its default): the lines still reach the browser as they are
// written, not when the run ends.
func TestInvokeStreamsOutputThroughNginx(t *testing.T) {
	testInvokeStreams(t, func(p *platform) string { return startNginx(t, p.addr, "60s") })
}

// testInvokeStreams runs the check with the dashboard reached at front(p).
func testInvokeStreams(t *testing.T, front func(*platform) string) {
	ns := cluster.CreateNamespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cluster.Client.Create(ctx, newAgent(ns, "bot")); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	out := &pipeOutput{r: pr, opened: make(chan string, 1)}
	p := startPlatform(t, nil)
	jwt, id, token := p.deployment("stream@example.com")
	startOperator(t, p.url(), token, func(o *connect.Options) { o.RunOutput = out })
	waitConverged(t, p, jwt, id)
	dashboard := front(p)

	body, _ := json.Marshal(map[string]any{"input": "go", "timeout_seconds": 60})
	req, _ := http.NewRequestWithContext(ctx, "POST", dashboard+"/api/v1/deployments/"+id+"/agents/"+ns+"/bot/invoke", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+jwt)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/x-ndjson")
	type answer struct {
		res *http.Response
		err error
	}
	answered := make(chan answer, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		answered <- answer{res, err}
	}()

	// The agentlet starts the run: the AgentRun controller records its id.
	var run agentkubev1alpha1.AgentRun
	poll.Until(t, 30*time.Second, func() error {
		var runs agentkubev1alpha1.AgentRunList
		if err := cluster.Client.List(ctx, &runs, client.InNamespace(ns)); err != nil || len(runs.Items) == 0 {
			return errNotYet("the AgentRun")
		}
		run = runs.Items[0]
		return nil
	})
	run.Status.Phase, run.Status.RunID = agentkubev1alpha1.AgentRunPhaseRunning, "run-1"
	if err := cluster.Client.Status().Update(ctx, &run); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-out.opened:
		if got != "run-1" {
			t.Fatalf("followed run %q, want run-1", got)
		}
	case <-ctx.Done():
		t.Fatal("the connector never followed the run's output")
	}

	// First output: it must reach the client while the run is still running.
	if _, err := pw.Write([]byte("step 1\n")); err != nil {
		t.Fatal(err)
	}
	a := <-answered
	if a.err != nil {
		t.Fatal(a.err)
	}
	defer a.res.Body.Close()
	if a.res.StatusCode != http.StatusOK || a.res.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("answer %s %q, want 200 application/x-ndjson", a.res.Status, a.res.Header.Get("Content-Type"))
	}
	lines := bufio.NewReader(a.res.Body)
	first := readLine(t, lines)
	if first["type"] != "output" || first["output"] != "step 1\n" {
		t.Fatalf("first line %v, want the run's first output", first)
	}

	// The rest, with a multi-byte character split across two writes; then
	// the run ends.
	euro := []byte("€")
	for _, w := range [][]byte{[]byte("step 2: 5"), euro[:1], append(euro[1:], '\n')} {
		if _, err := pw.Write(w); err != nil {
			t.Fatal(err)
		}
	}
	pw.Close()
	exit := int32(0)
	run.Status.Phase, run.Status.ExitCode, run.Status.OutputTail = agentkubev1alpha1.AgentRunPhaseSucceeded, &exit, "step 1\nstep 2: 5€\n"
	if err := cluster.Client.Status().Update(ctx, &run); err != nil {
		t.Fatal(err)
	}
	var streamed strings.Builder
	streamed.WriteString(first["output"].(string))
	var result map[string]any
	for result == nil {
		m := readLine(t, lines)
		switch m["type"] {
		case "output":
			streamed.WriteString(m["output"].(string))
		case "result":
			result = m
		default:
			t.Fatalf("unexpected line %v", m)
		}
	}
	if streamed.String() != "step 1\nstep 2: 5€\n" {
		t.Fatalf("streamed output %q", streamed.String())
	}
	if result["phase"] != agentkubev1alpha1.AgentRunPhaseSucceeded || result["run_name"] != run.Name || result["output_streamed"] != true {
		t.Fatalf("result %v", result)
	}
	if rest, _ := io.ReadAll(lines); len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("data after the result: %q", rest)
	}

	// A request refused before the run starts keeps its HTTP status.
	req, _ = http.NewRequestWithContext(ctx, "POST", dashboard+"/api/v1/deployments/"+id+"/agents/"+ns+"/missing/invoke", strings.NewReader(`{"input":"x"}`))
	req.Header.Set("Authorization", "Bearer "+jwt)
	req.Header.Set("Accept", "application/x-ndjson")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("streamed invoke of a missing agent: %s, want 404", res.Status)
	}
}

type errNotYet string

func (e errNotYet) Error() string { return "waiting for " + string(e) }

func readLine(t *testing.T, r *bufio.Reader) map[string]any {
	t.Helper()
	line, err := r.ReadBytes('\n')
	if err != nil {
		t.Fatalf("reading the stream: %v (read %q)", err, line)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	return m
}
