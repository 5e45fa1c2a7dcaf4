// Package run executes an Agent's runtime CLI one run at a time: it starts
// the process in its own process group, keeps its output within a bound,
// records it as asciicast, enforces the timeout, and reports how it ended.
package run

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/exo-in-go/exo/pkg/agentlet/adapter"
	"github.com/exo-in-go/exo/pkg/agentlet/api"
	"github.com/exo-in-go/exo/pkg/agentlet/config"
	"github.com/exo-in-go/exo/pkg/agentlet/outputlog"
)

// Errors returned by the Manager; the server maps them to HTTP statuses.
var (
	ErrNotFound     = errors.New("run not found")
	ErrShuttingDown = errors.New("agentlet is shutting down")
	ErrInvalid      = errors.New("invalid run request")
)

// BusyError means another run is still in progress: an Agent runs one thing
// at a time, and refusing is clearer than an invisible queue.
type BusyError struct{ ActiveRun string }

func (e *BusyError) Error() string {
	return fmt.Sprintf("run %q is still in progress; an agent runs one run at a time", e.ActiveRun)
}

// validID accepts Kubernetes object names (DNS subdomains), so the
// manager can use the AgentRun's name; it is also safe as a directory name.
var validID = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)

// Manager owns the runs of one agent.
type Manager struct {
	cfg    config.Config
	log    *slog.Logger
	runDir string

	mu           sync.Mutex
	runs         map[string]*Run
	order        []string // run IDs, oldest first
	active       *Run
	shuttingDown bool
	supervisors  sync.WaitGroup
}

// NewManager prepares the data directory.
func NewManager(cfg config.Config, log *slog.Logger) (*Manager, error) {
	runDir := filepath.Join(cfg.DataDir, "runs")
	if err := os.MkdirAll(runDir, 0o700); err != nil {
		return nil, fmt.Errorf("create run directory: %w", err)
	}
	return &Manager{cfg: cfg, log: log, runDir: runDir, runs: map[string]*Run{}}, nil
}

// Start begins a run. It returns the run's status and whether it was
// created: a request naming an existing run returns that run unchanged.
// A process that cannot be started still creates a run, in phase Failed, so
// the caller sees why.
func (m *Manager) Start(req api.RunRequest) (api.Run, bool, error) {
	timeout, err := m.timeout(req.TimeoutSeconds)
	if err != nil {
		return api.Run{}, false, err
	}
	if req.ID != "" && !validID.MatchString(req.ID) {
		return api.Run{}, false, fmt.Errorf("%w: id %q must be a lowercase DNS subdomain name", ErrInvalid, req.ID)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.shuttingDown {
		return api.Run{}, false, ErrShuttingDown
	}
	if existing, ok := m.runs[req.ID]; ok {
		return existing.Status(), false, nil
	}
	if m.active != nil {
		return api.Run{}, false, &BusyError{ActiveRun: m.active.id}
	}
	id := req.ID
	if id == "" {
		id = newID()
	}
	r, err := m.prepare(id, req, timeout)
	if err != nil {
		return api.Run{}, false, err
	}
	m.runs[id] = r
	m.order = append(m.order, id)
	m.pruneLocked()

	if err := r.start(); err != nil {
		m.log.Warn("Run failed to start", "run", id, "command", r.argv, "err", err)
		return r.Status(), true, nil
	}
	m.active = r
	m.supervisors.Add(1)
	go func() {
		defer m.supervisors.Done()
		r.supervise(m.cfg.KillGracePeriod)
		m.mu.Lock()
		if m.active == r {
			m.active = nil
		}
		m.mu.Unlock()
		st := r.Status()
		m.log.Info("Run finished", "run", id, "phase", st.Phase, "exitCode", deref(st.ExitCode), "signal", st.Signal)
	}()
	m.log.Info("Run started", "run", id, "pid", r.pid, "command", r.argv, "timeout", timeout)
	return r.Status(), true, nil
}

func (m *Manager) timeout(seconds int64) (time.Duration, error) {
	if seconds < 0 {
		return 0, fmt.Errorf("%w: timeoutSeconds must not be negative", ErrInvalid)
	}
	if seconds == 0 {
		return m.cfg.DefaultTimeout, nil
	}
	if d := time.Duration(seconds) * time.Second; d <= m.cfg.MaxTimeout && seconds <= int64(m.cfg.MaxTimeout/time.Second) {
		return d, nil
	}
	return 0, fmt.Errorf("%w: timeoutSeconds %d exceeds the maximum of %s", ErrInvalid, seconds, m.cfg.MaxTimeout)
}

// prepare lays out the run's directory and builds its process. The caller
// holds m.mu.
func (m *Manager) prepare(id string, req api.RunRequest, timeout time.Duration) (*Run, error) {
	dir := filepath.Join(m.runDir, id)
	if err := os.RemoveAll(dir); err != nil { // leftovers of a forgotten run
		return nil, fmt.Errorf("clear run directory: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "output"), 0o700); err != nil {
		return nil, fmt.Errorf("create run directory: %w", err)
	}
	home, ownHome, err := runtimeHome(m.cfg.DataDir)
	if err != nil {
		return nil, err
	}
	spec := runtimeSpec(m.cfg, home)
	spec.RunID, spec.Input, spec.Args = id, req.Input, req.Args
	spec.InputFile, spec.PromptFile = filepath.Join(dir, "input"), filepath.Join(dir, "prompt")
	inv, err := adapter.Build(spec)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	files := map[string]string{
		spec.InputFile:              req.Input,
		spec.PromptFile:             adapter.Prompt(spec.Goal, spec.Input),
		filepath.Join(dir, "stdin"): inv.Stdin,
	}
	for path, content := range files {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			return nil, fmt.Errorf("write run file: %w", err)
		}
	}
	env, err := setUp(inv, home, ownHome)
	if err != nil {
		return nil, fmt.Errorf("prepare the runtime's configuration: %w", err)
	}
	output, err := outputlog.New(filepath.Join(dir, "output"), m.cfg.MaxOutputBytes, api.OutputTailBytes)
	if err != nil {
		return nil, err
	}
	return &Run{
		id:            id,
		dir:           dir,
		runtime:       string(m.cfg.Runtime),
		argv:          inv.Argv,
		env:           env,
		workDir:       m.cfg.WorkDir,
		timeout:       timeout,
		maxRecording:  m.cfg.MaxRecordingBytes,
		output:        output,
		created:       time.Now(),
		phase:         api.PhasePending,
		cancelRequest: make(chan struct{}),
		done:          make(chan struct{}),
		log:           m.log.With("run", id),
	}, nil
}

// pruneLocked forgets and deletes the oldest finished runs beyond the
// history bound, so a long-lived agent does not fill its disk.
func (m *Manager) pruneLocked() {
	excess := len(m.order) - m.cfg.RunHistory
	for i := 0; i < len(m.order) && excess > 0; {
		r := m.runs[m.order[i]]
		if !r.Status().Phase.Finished() {
			i++
			continue
		}
		if err := os.RemoveAll(r.dir); err != nil {
			m.log.Warn("Could not delete an old run", "run", r.id, "err", err)
		}
		delete(m.runs, r.id)
		m.order = slices.Delete(m.order, i, i+1)
		excess--
	}
}

// Get returns a run's status.
func (m *Manager) Get(id string) (api.Run, error) {
	r, err := m.lookup(id)
	if err != nil {
		return api.Run{}, err
	}
	return r.Status(), nil
}

// List returns every remembered run, newest first.
func (m *Manager) List() []api.Run {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]api.Run, 0, len(m.order))
	for i := len(m.order) - 1; i >= 0; i-- {
		out = append(out, m.runs[m.order[i]].Status())
	}
	return out
}

// Cancel asks a run to stop: its process group gets SIGTERM, then SIGKILL
// after the grace period. Canceling a finished run changes nothing.
func (m *Manager) Cancel(id, reason string) (api.Run, error) {
	r, err := m.lookup(id)
	if err != nil {
		return api.Run{}, err
	}
	r.cancel(reason)
	return r.Status(), nil
}

// Output reads a run's output from offset; see outputlog.Log.NewReader.
func (m *Manager) Output(ctx context.Context, id string, offset int64, follow bool) (io.ReadCloser, int64, error) {
	r, err := m.lookup(id)
	if err != nil {
		return nil, 0, err
	}
	reader, start := r.output.NewReader(ctx, offset, follow)
	return reader, start, nil
}

// RecordingPath returns the path of a run's asciicast file.
func (m *Manager) RecordingPath(id string) (string, error) {
	r, err := m.lookup(id)
	if err != nil {
		return "", err
	}
	return r.recordingPath(), nil
}

// Shutdown refuses new runs, cancels the active one and waits for it to end
// (the process group gets the grace period before SIGKILL).
func (m *Manager) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	m.shuttingDown = true
	active := m.active
	m.mu.Unlock()
	if active != nil {
		active.cancel("the agentlet is shutting down")
	}
	done := make(chan struct{})
	go func() {
		m.supervisors.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for runs to stop: %w", ctx.Err())
	}
}

func (m *Manager) lookup(id string) (*Run, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.runs[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return r, nil
}

// newID makes a run ID that sorts by creation time and is unique enough
// without coordination.
func newID() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "run-" + strings.ToLower(time.Now().UTC().Format("20060102-150405")) + "-" + hex.EncodeToString(b[:])
}

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}
