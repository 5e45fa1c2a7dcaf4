package runtimes

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/exo-in-go/exo/pkg/agentlet/adapter"
	"github.com/exo-in-go/exo/pkg/agentlet/api"
	"github.com/exo-in-go/exo/pkg/agentlet/config"
	"github.com/exo-in-go/exo/pkg/agentlet/run"
	subresourcesv1alpha1 "github.com/exo-in-go/exo/pkg/apis/subresources/v1alpha1"
	"github.com/exo-in-go/exo/test/fakemodel"
)

// BenchmarkRuntimes measures, for each CLI answering a plain prompt from the
// fake model, with -benchtime Nx (the figures are p50 of N, each in seconds):
//
//   - invoke-first-line, invoke-reply, invoke-done: from the invoke call to
//     the aggregated API (an AgentRun, the AgentRun controller, the agentlet
//     in the Agent's pod on the localnode) to the first line of the run's
//     output, the line with the model's reply, and the end of the output
//     (agents/NAME/log?follow=true);
//
//   - direct: the same command line, environment and configuration run by
//     the benchmark itself (os/exec, output into memory);
//
//   - agentlet: the same run through the agentlet's run manager
//     (pkg/agentlet/run: its process group, output log and recording) in
//     this process, from the start request to the end of the output;
//
//   - agentlet/direct: the agentlet's own overhead as a ratio (goal ≤ 1.05);
//     direct and agentlet alternate within each iteration, so a change of
//     the machine's load affects both.
//
//     go test ./test/runtimes -run '^$' -bench Runtimes -benchtime 10x
func BenchmarkRuntimes(b *testing.B) {
	for _, tc := range cases {
		b.Run(string(tc.runtime), func(b *testing.B) {
			a := newAgent(b, tc.runtime)
			local := newLocalRunner(b, tc, a)
			var first, reply, done, direct, viaAgentlet []time.Duration
			i := 0
			for b.Loop() {
				i++
				prompt := fmt.Sprintf("Say hello to benchmark iteration %d, please.", i)
				f, r, d := a.invokeAndFollow(b, prompt)
				first, reply, done = append(first, f), append(reply, r), append(done, d)
				direct = append(direct, local.direct(b, prompt))
				viaAgentlet = append(viaAgentlet, local.agentlet(b, prompt))
			}
			b.ReportMetric(p50(first), "invoke-first-line-s")
			b.ReportMetric(p50(reply), "invoke-reply-s")
			b.ReportMetric(p50(done), "invoke-done-s")
			b.ReportMetric(p50(direct), "direct-s")
			b.ReportMetric(p50(viaAgentlet), "agentlet-s")
			b.ReportMetric(p50(viaAgentlet)/p50(direct), "agentlet/direct")
		})
	}
}

// invokeAndFollow invokes the Agent through the aggregated API and follows
// the run's output, returning when its first line, the line with the reply
// and its end arrived.
func (a *testAgent) invokeAndFollow(b *testing.B, prompt string) (first, reply, done time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sub := env.cluster.Agentkube.SubresourcesV1alpha1()
	start := time.Now()
	inv, err := sub.Agents(a.namespace).Invoke(ctx, a.name, &subresourcesv1alpha1.AgentInvocation{
		Spec: subresourcesv1alpha1.AgentInvocationSpec{Input: prompt, TimeoutSeconds: 60},
	}, metav1.CreateOptions{})
	if err != nil {
		b.Fatalf("invoke: %v", err)
	}
	stream, err := sub.RESTClient().Get().Namespace(a.namespace).Resource("agents").Name(a.name).SubResource("log").
		Param("run", inv.Status.RunName).Param("follow", "true").Stream(ctx)
	if err != nil {
		b.Fatalf("following run %s: %v", inv.Status.RunName, err)
	}
	defer stream.Close()
	want := fakemodel.ReplyText(prompt)
	sc := bufio.NewScanner(stream)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var out strings.Builder
	for sc.Scan() {
		if first == 0 {
			first = time.Since(start)
		}
		if reply == 0 && strings.Contains(sc.Text(), want) {
			reply = time.Since(start)
		}
		out.WriteString(sc.Text() + "\n")
	}
	done = time.Since(start)
	if err := sc.Err(); err != nil || reply == 0 {
		b.Fatalf("run %s: output without %q (%v):\n%s", inv.Status.RunName, want, err, out.String())
	}
	return first, reply, done
}

// localRunner runs an Agent's CLI on this host, directly and through the
// agentlet's run manager, with what the Agent's pod gives it: the adapter's
// command line, environment and configuration files, the key, the proxy.
type localRunner struct {
	tc      runtimeCase
	cfg     config.Config
	home    string
	workDir string
	spec    adapter.Spec
	runs    *run.Manager
	n       int
}

func newLocalRunner(b *testing.B, tc runtimeCase, a *testAgent) *localRunner {
	dir := b.TempDir()
	l := &localRunner{tc: tc, home: filepath.Join(dir, "home"), workDir: filepath.Join(dir, "workspace")}
	for _, d := range []string{l.home, l.workDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			b.Fatal(err)
		}
	}
	cfg := config.Default()
	cfg.Runtime, cfg.Model, cfg.ModelBaseURL = config.Runtime(tc.runtime), modelName, a.modelServer.URL
	cfg.WorkDir, cfg.DataDir, cfg.Token = l.workDir, filepath.Join(dir, "agentlet"), "unused"
	l.cfg = cfg
	base := []string{"PATH=" + env.clis + ":/usr/local/bin:/usr/bin:/bin", "HOME=" + l.home, adapter.TokenEnv(cfg.Runtime) + "=fake-key"}
	for k, v := range a.proxy.env() {
		base = append(base, k+"="+v)
	}
	l.spec = adapter.Spec{Runtime: cfg.Runtime, Model: modelName, ModelBaseURL: a.modelServer.URL, APIKey: "fake-key", Home: l.home}
	inv, err := adapter.Build(l.spec)
	if err != nil {
		b.Fatal(err)
	}
	// The run manager gives its runs this process's environment. An Agent's
	// pod has none of the adapter's defaults set, this machine may have
	// (IS_SANDBOX=yes, which Claude Code does not take for true): set them
	// as the pod gets them.
	for _, kv := range slices.Concat(base, inv.Defaults) {
		k, v, _ := strings.Cut(kv, "=")
		b.Setenv(k, v)
	}
	if l.runs, err = run.NewManager(cfg, slog.New(slog.DiscardHandler)); err != nil {
		b.Fatal(err)
	}
	return l
}

// direct runs the CLI as the agentlet would, without it: the adapter's
// command line and stdin, and the environment the agentlet gives its runs
// (run.RuntimeEnv, which also writes the configuration files).
func (l *localRunner) direct(b *testing.B, prompt string) time.Duration {
	spec := l.spec
	spec.Input = prompt
	inv, err := adapter.Build(spec)
	if err != nil {
		b.Fatal(err)
	}
	runtimeEnv, err := run.RuntimeEnv(l.cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, inv.Argv[0], inv.Argv[1:]...)
	cmd.Env = runtimeEnv
	cmd.Dir, cmd.Stdin = l.workDir, strings.NewReader(inv.Stdin)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil || !strings.Contains(string(out), fakemodel.ReplyText(prompt)) {
		b.Fatalf("%s directly: %v\n%s", l.tc.runtime, err, out)
	}
	return took
}

// agentlet runs the CLI through the agentlet's run manager and reads the
// run's output to its end, as the manager's output stream does.
func (l *localRunner) agentlet(b *testing.B, prompt string) time.Duration {
	l.n++
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	st, _, err := l.runs.Start(api.RunRequest{ID: fmt.Sprintf("bench-%d", l.n), Input: prompt, TimeoutSeconds: 60})
	if err != nil {
		b.Fatal(err)
	}
	out, _, err := l.runs.Output(ctx, st.ID, 0, true)
	if err != nil {
		b.Fatal(err)
	}
	data, err := io.ReadAll(out)
	out.Close()
	took := time.Since(start)
	if err != nil && !errors.Is(err, io.EOF) {
		b.Fatal(err)
	}
	if st, _ = l.runs.Get(st.ID); !strings.Contains(string(data), fakemodel.ReplyText(prompt)) {
		b.Fatalf("%s through the agentlet: phase %s (%s)\n%s", l.tc.runtime, st.Phase, st.Message, data)
	}
	return took
}

// p50 is the median in seconds.
func p50(d []time.Duration) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2].Seconds()
}
