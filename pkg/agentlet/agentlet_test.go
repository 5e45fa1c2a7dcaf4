package agentlet_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/client-go/rest"
	clientremotecommand "k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/exo-in-go/exo/pkg/agentlet"
	"github.com/exo-in-go/exo/pkg/agentlet/api"
	"github.com/exo-in-go/exo/pkg/agentlet/client"
	"github.com/exo-in-go/exo/pkg/agentlet/config"
	"github.com/exo-in-go/exo/pkg/agentlet/endpoint"
	"github.com/exo-in-go/exo/pkg/asciicast"
	"github.com/exo-in-go/exo/pkg/certs"
)

const testToken = "s3cret-token"

// testAgentlet is a real agentlet serving on a loopback port. Its runtime
// is Custom with command `/bin/sh -c`, so each run's first arg is the
// script to run.
type testAgentlet struct {
	url     string
	client  *client.Client
	dataDir string
	stop    func() error
}

func startAgentlet(t *testing.T, mutate ...func(*config.Config)) *testAgentlet {
	t.Helper()
	cfg := config.Default()
	cfg.Token = testToken
	cfg.Runtime = config.RuntimeCustom
	cfg.Command = []string{"/bin/sh", "-c"}
	cfg.Goal = "test goal"
	cfg.AttachCommand = []string{"/bin/sh"}
	cfg.DataDir = t.TempDir()
	cfg.KillGracePeriod = 2 * time.Second
	for _, m := range mutate {
		m(&cfg)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := agentlet.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, ln) }()
	url := "http://" + ln.Addr().String()
	c, err := client.New(url, testToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	var stopped bool
	var stopErr error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			stopErr = <-served
		}
		return stopErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("agentlet shutdown: %v", err)
		}
	})
	return &testAgentlet{url: url, client: c, dataDir: cfg.DataDir, stop: stop}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// runToEnd starts a run and follows its output until it finishes.
func runToEnd(t *testing.T, ag *testAgentlet, req api.RunRequest) (api.Run, string) {
	t.Helper()
	ctx := context.Background()
	st, created, err := ag.client.StartRun(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !created || st.ID == "" {
		t.Fatalf("StartRun: created=%v status=%+v", created, st)
	}
	out, err := ag.client.StreamOutput(ctx, st.ID, client.OutputOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	b, err := io.ReadAll(out)
	if err != nil {
		t.Fatalf("following output: %v", err)
	}
	// The agentlet records the outcome before it ends the output stream,
	// so the run is normally finished by now; waitFinished only guards
	// against a stream cut short.
	final := waitFinished(t, ag, st.ID)
	return final, string(b)
}

func waitFinished(t *testing.T, ag *testAgentlet, id string) api.Run {
	t.Helper()
	for {
		st, err := ag.client.GetRun(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if st.Phase.Finished() {
			return st
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunSucceedsWithOutput(t *testing.T) {
	ag := startAgentlet(t)
	script := `echo "goal=$AGENT_GOAL"; printf 'input='; cat; echo; echo "env=$AGENT_INPUT"; echo "token=${AGENTLET_TOKEN:-none}"`
	st, out := runToEnd(t, ag, api.RunRequest{Input: "héllo €", Args: []string{script}, TimeoutSeconds: 60})
	if st.Phase != api.PhaseSucceeded || st.ExitCode == nil || *st.ExitCode != 0 {
		t.Fatalf("got %+v, want Succeeded with exit code 0", st)
	}
	want := "goal=test goal\ninput=héllo €\nenv=héllo €\ntoken=none\n"
	if out != want {
		t.Errorf("output %q, want %q", out, want)
	}
	if st.OutputTail != want || st.OutputBytes != int64(len(want)) {
		t.Errorf("status tail %q (%d bytes), want %q", st.OutputTail, st.OutputBytes, want)
	}
	if st.StartTime == nil || st.CompletionTime == nil {
		t.Errorf("start/completion time missing: %+v", st)
	}

	rec, err := ag.client.Recording(context.Background(), st.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	r, err := asciicast.NewReader(rec)
	if err != nil {
		t.Fatal(err)
	}
	var replayed strings.Builder
	for {
		ev, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("recording does not validate: %v", err)
		}
		if ev.Code == asciicast.CodeOutput {
			replayed.WriteString(ev.Data)
		}
	}
	if replayed.String() != want {
		t.Errorf("recording replays %q, want %q", replayed.String(), want)
	}
}

func TestRunFailsWithExitCode(t *testing.T) {
	ag := startAgentlet(t)
	st, out := runToEnd(t, ag, api.RunRequest{Args: []string{"echo oops >&2; exit 3"}})
	if st.Phase != api.PhaseFailed || st.ExitCode == nil || *st.ExitCode != 3 || st.Signal != "" {
		t.Fatalf("got %+v, want Failed with exit code 3", st)
	}
	if out != "oops\n" {
		t.Errorf("stderr not captured: %q", out)
	}
}

func TestRunKilledBySignalReportsIt(t *testing.T) {
	ag := startAgentlet(t)
	st, _ := runToEnd(t, ag, api.RunRequest{Args: []string{"kill -SEGV $$"}})
	if st.Phase != api.PhaseFailed || st.Signal != "SIGSEGV" || st.ExitCode == nil || *st.ExitCode != 128+11 {
		t.Fatalf("got %+v, want Failed by SIGSEGV with exit code 139", st)
	}
}

func TestRunTimesOutAndLeavesNoProcess(t *testing.T) {
	ag := startAgentlet(t)
	pidFile := filepath.Join(t.TempDir(), "bg.pid")
	// A background child that ignores SIGTERM proves the whole group is
	// killed, not just the script.
	script := `(trap '' TERM; sleep 1000) & echo $! > ` + pidFile + `; echo started; sleep 1000`
	st, out := runToEnd(t, ag, api.RunRequest{Args: []string{script}, TimeoutSeconds: 1})
	if st.Phase != api.PhaseTimedOut {
		t.Fatalf("got %+v, want TimedOut", st)
	}
	if !strings.Contains(st.Message, "timeout") || out != "started\n" {
		t.Errorf("message %q, output %q", st.Message, out)
	}
	if alive := survivingGroupMembers(t, st.PID); len(alive) > 0 {
		t.Errorf("processes of group %d survived the timeout: %v", st.PID, alive)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	bg, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if processAlive(bg) {
		t.Errorf("background process %d survived", bg)
	}
}

func TestSecondRunWhileOneIsRunningConflicts(t *testing.T) {
	ag := startAgentlet(t)
	ctx := context.Background()
	first, _, err := ag.client.StartRun(ctx, api.RunRequest{ID: "first", Args: []string{"echo ready; sleep 1000"}})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = ag.client.StartRun(ctx, api.RunRequest{Args: []string{"true"}})
	if !client.IsConflict(err) {
		t.Fatalf("second run: got %v, want 409 Conflict", err)
	}
	var se *client.StatusError
	if errors.As(err, &se) && (se.Status.Details == nil || se.Status.Details.Name != "first") {
		t.Errorf("conflict does not name the active run: %+v", se.Status)
	}

	// Repeating the first request is idempotent: same run, not created.
	again, created, err := ag.client.StartRun(ctx, api.RunRequest{ID: "first", Args: []string{"echo ready; sleep 1000"}})
	if err != nil || created || again.ID != first.ID {
		t.Errorf("retry of run %q: created=%v id=%q err=%v", first.ID, created, again.ID, err)
	}

	if _, err := ag.client.Cancel(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	st := waitFinished(t, ag, first.ID)
	if st.Phase != api.PhaseCanceled || st.Signal != "SIGTERM" {
		t.Errorf("got %+v, want Canceled by SIGTERM", st)
	}
	if alive := survivingGroupMembers(t, st.PID); len(alive) > 0 {
		t.Errorf("processes survived cancel: %v", alive)
	}
	// The agent is free again.
	if st, _ := runToEnd(t, ag, api.RunRequest{Args: []string{"true"}}); st.Phase != api.PhaseSucceeded {
		t.Errorf("run after cancel: %+v", st)
	}
}

func TestUnauthenticatedRequestsAreRefused(t *testing.T) {
	ag := startAgentlet(t)
	for name, header := range map[string]string{
		"no header":    "",
		"wrong token":  "Bearer nope",
		"wrong scheme": "Basic " + testToken,
		"token prefix": "Bearer " + testToken[:4],
	} {
		t.Run(name, func(t *testing.T) {
			for _, req := range []*http.Request{
				mustRequest(t, http.MethodPost, ag.url+"/v1/runs", strings.NewReader(`{"args":["touch /tmp/pwned"]}`)),
				mustRequest(t, http.MethodGet, ag.url+"/v1/runs", nil),
				mustRequest(t, http.MethodGet, ag.url+"/v1/attach", nil),
			} {
				if header != "" {
					req.Header.Set("Authorization", header)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("%s %s: got %d, want 401", req.Method, req.URL.Path, resp.StatusCode)
				}
			}
		})
	}
	bad, _ := client.New(ag.url, "wrong", nil)
	if _, err := bad.ListRuns(context.Background()); err == nil {
		t.Error("client with a wrong token was let in")
	}
	resp, err := http.Get(ag.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("healthz: %d", resp.StatusCode)
	}
}

func TestHugeInputIsRefused(t *testing.T) {
	ag := startAgentlet(t)
	huge := strings.Repeat("x", 100<<20)
	_, _, err := ag.client.StartRun(context.Background(), api.RunRequest{Input: huge, Args: []string{"true"}})
	if !client.IsTooLarge(err) {
		t.Fatalf("100 MB input through the client: got %v, want 413", err)
	}

	// A chunked body has no declared length; the reader limit catches it.
	body := io.MultiReader(strings.NewReader(`{"input":"`), strings.NewReader(strings.Repeat("x", 2<<20)), strings.NewReader(`"}`))
	req := mustRequest(t, http.MethodPost, ag.url+"/v1/runs", body)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked 2 MiB body: got %d, want 413", resp.StatusCode)
	}
	if runs, err := ag.client.ListRuns(context.Background()); err != nil || len(runs) != 0 {
		t.Errorf("refused requests created runs: %v %v", runs, err)
	}
}

func TestFollowStreamsOutputAsItIsWritten(t *testing.T) {
	ag := startAgentlet(t)
	ctx := context.Background()
	// The script waits for a file the test creates only after reading the
	// first line, so this passes only if output is streamed, not buffered.
	gate := filepath.Join(t.TempDir(), "gate")
	script := `echo first; while [ ! -e ` + gate + ` ]; do sleep 0.05; done; echo second`
	st, _, err := ag.client.StartRun(ctx, api.RunRequest{Args: []string{script}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := ag.client.StreamOutput(ctx, st.ID, client.OutputOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	buf := make([]byte, 64)
	n, err := io.ReadAtLeast(out, buf, len("first\n"))
	if err != nil || string(buf[:n]) != "first\n" {
		t.Fatalf("first chunk %q, %v", buf[:n], err)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(out)
	if err != nil || string(rest) != "second\n" {
		t.Fatalf("rest %q, %v", rest, err)
	}
	if st := waitFinished(t, ag, st.ID); st.Phase != api.PhaseSucceeded {
		t.Errorf("got %+v", st)
	}

	// Resuming from an offset returns the remainder only.
	tail, err := ag.client.StreamOutput(ctx, st.ID, client.OutputOptions{Offset: int64(len("first\n"))})
	if err != nil {
		t.Fatal(err)
	}
	defer tail.Close()
	if b, _ := io.ReadAll(tail); string(b) != "second\n" || tail.Offset != 6 {
		t.Errorf("resumed output %q at %d", b, tail.Offset)
	}
}

func TestAttachRoundTripsKeystrokesAndResize(t *testing.T) {
	ag := startAgentlet(t)
	dialer := websocket.Dialer{Subprotocols: []string{remotecommand.StreamProtocolV5Name}}
	header := http.Header{"Authorization": {"Bearer " + testToken}}
	conn, resp, err := dialer.Dial(strings.Replace(ag.url, "http", "ws", 1)+"/v1/attach?width=80&height=24", header)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	defer conn.Close()
	if conn.Subprotocol() != remotecommand.StreamProtocolV5Name {
		t.Fatalf("negotiated %q", conn.Subprotocol())
	}
	session := resp.Header.Get(api.HeaderSessionID)

	send := func(channel byte, data string) {
		t.Helper()
		if err := conn.WriteMessage(websocket.BinaryMessage, append([]byte{channel}, data...)); err != nil {
			t.Fatal(err)
		}
	}
	var stdout strings.Builder
	readUntil := func(want string) {
		t.Helper()
		for !strings.Contains(stdout.String(), want) {
			kind, msg, err := conn.ReadMessage()
			if err != nil {
				t.Fatalf("waiting for %q in %q: %v", want, stdout.String(), err)
			}
			if kind == websocket.BinaryMessage && len(msg) > 0 && msg[0] == remotecommand.StreamStdOut {
				stdout.Write(msg[1:])
			}
		}
	}

	size, _ := json.Marshal(api.TerminalSize{Width: 101, Height: 37})
	send(remotecommand.StreamResize, string(size))
	send(remotecommand.StreamStdIn, "stty size\n")
	readUntil("37 101")

	send(remotecommand.StreamStdIn, "exit 7\n")
	var status metav1.Status
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("no status before the connection closed: %v", err)
		}
		if len(msg) > 0 && msg[0] == remotecommand.StreamErr {
			if err := json.Unmarshal(msg[1:], &status); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if status.Reason != remotecommand.NonZeroExitCodeReason || status.Details == nil ||
		len(status.Details.Causes) != 1 || status.Details.Causes[0].Message != "7" {
		t.Errorf("status %+v, want NonZeroExitCode with ExitCode 7", status)
	}
	// The server closes the connection after the status.
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			break
		}
	}

	rec, err := ag.client.SessionRecording(context.Background(), session)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	data, _ := io.ReadAll(rec)
	h, _, err := asciicast.Validate(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("session recording invalid: %v\n%s", err, data)
	}
	if h.Width != 80 || h.Height != 24 || !bytes.Contains(data, []byte(`"r","101x37"`)) || !bytes.Contains(data, []byte("37 101")) {
		t.Errorf("recording lacks the resize or output:\n%s", data)
	}
	if bytes.Contains(data, []byte(`"i",`)) {
		t.Errorf("input recorded although %s is off", config.EnvRecordInput)
	}
}

// TestAttachWithKubernetesClient drives attach with client-go's WebSocket
// executor, the code kubectl uses, to prove the framing is compatible.
func TestAttachWithKubernetesClient(t *testing.T) {
	ag := startAgentlet(t, func(c *config.Config) { c.RecordInput = true })
	exec, err := clientremotecommand.NewWebSocketExecutor(&rest.Config{Host: ag.url, BearerToken: testToken}, "GET", ag.url+"/v1/attach")
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	sizes := make(sizeQueue, 1)
	sizes <- clientremotecommand.TerminalSize{Width: 90, Height: 30}
	close(sizes)
	err = exec.StreamWithContext(context.Background(), clientremotecommand.StreamOptions{
		Stdin:             strings.NewReader("stty size; echo kube-$((40+2))\nexit 3\n"),
		Stdout:            &stdout,
		Tty:               true,
		TerminalSizeQueue: sizes,
	})
	var exitErr utilexec.CodeExitError
	if !errors.As(err, &exitErr) || exitErr.Code != 3 {
		t.Fatalf("got error %v, want exit code 3", err)
	}
	if !strings.Contains(stdout.String(), "kube-42") {
		t.Errorf("stdout %q lacks the command's output", stdout.String())
	}
}

type sizeQueue chan clientremotecommand.TerminalSize

func (q sizeQueue) Next() *clientremotecommand.TerminalSize {
	s, ok := <-q
	if !ok {
		return nil
	}
	return &s
}

func TestShutdownCancelsTheActiveRun(t *testing.T) {
	ag := startAgentlet(t)
	ctx := context.Background()
	st, _, err := ag.client.StartRun(ctx, api.RunRequest{Args: []string{"trap 'echo bye; exit 0' TERM; echo up; while :; do sleep 0.05; done"}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := ag.client.StreamOutput(ctx, st.ID, client.OutputOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	buf := make([]byte, 3)
	if _, err := io.ReadFull(out, buf); err != nil || string(buf) != "up\n" {
		t.Fatalf("run did not start: %q %v", buf, err)
	}
	if err := ag.stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	rest, _ := io.ReadAll(out)
	if !strings.HasSuffix(string(rest), "bye\n") {
		t.Errorf("the run did not get SIGTERM to clean up: output %q", rest)
	}
	if alive := survivingGroupMembers(t, st.PID); len(alive) > 0 {
		t.Errorf("processes survived shutdown: %v", alive)
	}
}

func mustRequest(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// survivingGroupMembers lists the members of group pgid still alive a
// moment after the run finished. SIGKILL is delivered asynchronously: a
// killed process closes its files (which ends the run's output) before the
// kernel marks it a zombie, so a busy machine can briefly show it running.
// A process that is really left behind is still listed after two seconds.
func survivingGroupMembers(t *testing.T, pgid int) []int {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		alive := livingGroupMembers(t, pgid)
		if len(alive) == 0 || time.Now().After(deadline) {
			return alive
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// livingGroupMembers lists the processes of group pgid that are not
// zombies. A zombie has exited and only awaits reaping by its parent (init
// for orphans), so it no longer counts as a leftover.
func livingGroupMembers(t *testing.T, pgid int) []int {
	t.Helper()
	if pgid <= 0 {
		t.Fatalf("invalid pgid %d", pgid)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var alive []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		state, group, ok := procStat(pid)
		if ok && group == pgid && state != "Z" && state != "X" {
			alive = append(alive, pid)
		}
	}
	return alive
}

func processAlive(pid int) bool {
	state, _, ok := procStat(pid)
	return ok && state != "Z" && state != "X"
}

// procStat reads a process's state and process group from /proc.
func procStat(pid int) (state string, pgrp int, ok bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return "", 0, false
	}
	// The command name in parentheses may contain spaces; fields after
	// the last ')' are: state, ppid, pgrp, ...
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(fields) < 3 {
		return "", 0, false
	}
	pgrp, err = strconv.Atoi(fields[2])
	return fields[0], pgrp, err == nil
}

// TestTLSOnly: with a certificate configured the agentlet answers its API over TLS 1.3
// to a client verifying its name, and gives nothing to plain HTTP, TLS 1.2 or a client
// expecting another name.
func TestTLSOnly(t *testing.T) {
	ca, err := certs.NewCA("test-agentlet-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	name := endpoint.ServerName("a", "ns")
	kp, err := certs.IssueAgentletCertificate(ca, name, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, kp.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, kp.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	ag := startAgentlet(t, func(c *config.Config) { c.TLSCertFile, c.TLSKeyFile = certFile, keyFile })
	addr := strings.TrimPrefix(ag.url, "http://")
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)

	ok, _ := client.New("https://"+addr, testToken, &http.Client{Transport: endpoint.NewTransport(name, roots)})
	if _, err := ok.ListRuns(context.Background()); err != nil {
		t.Fatalf("verified TLS: %v", err)
	}
	wrong, _ := client.New("https://"+addr, testToken, &http.Client{Transport: endpoint.NewTransport(endpoint.ServerName("b", "ns"), roots)})
	if _, err := wrong.ListRuns(context.Background()); err == nil {
		t.Fatal("a client expecting Agent b accepted Agent a's certificate")
	}
	if _, err := ag.client.ListRuns(context.Background()); err == nil {
		t.Fatal("plain HTTP got an answer from the API")
	}
	if conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: name, RootCAs: roots, MaxVersion: tls.VersionTLS12}); err == nil {
		conn.Close()
		t.Fatal("TLS 1.2 accepted")
	}
}
