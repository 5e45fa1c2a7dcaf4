package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// process is a child of local-up. Each runs in its own process group and dies with
// local-up (Pdeathsig), so neither Ctrl-C nor a kill -9 of local-up leaves it behind.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startProcess(name string, logw io.Writer, env []string, path string, args ...string) (*process, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logw, logw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// stop sends SIGTERM to the process group and SIGKILL after grace.
func (p *process) stop(grace time.Duration) {
	pgid := -p.cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		slog.Warn("process did not stop in time; killing it", "process", p.name)
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-p.done
	}
	// Whatever the process left in its group goes too.
	_ = syscall.Kill(pgid, syscall.SIGKILL)
}

// exited reports an early exit as an error.
func (p *process) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited: %v", p.name, p.err)
	default:
		return nil
	}
}

// waitHTTP polls url until it answers 200, the process exits, or ctx ends.
func waitHTTP(ctx context.Context, p *process, url string, client *http.Client) error {
	if client == nil {
		client = &http.Client{Timeout: 2 * time.Second}
	}
	ticker := time.NewTicker(200 * time.Millisecond)
	defer ticker.Stop()
	for {
		if err := p.exited(); err != nil {
			return err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("waiting for %s at %s", p.name, url), ctx.Err())
		case <-ticker.C:
		}
	}
}

// withLog names the log of a failed process and quotes its last lines, so
// the error explains itself even where the file is gone (a test's
// temporary folder) or the reader only sees local-up's output.
func withLog(err error, log *os.File) error {
	const maxTail = 4 << 10
	tail := ""
	if b, rerr := os.ReadFile(log.Name()); rerr == nil {
		if len(b) > maxTail {
			b = b[len(b)-maxTail:]
			if i := bytes.IndexByte(b, '\n'); i >= 0 {
				b = b[i+1:]
			}
		}
		tail = strings.TrimRight(string(b), "\n")
	}
	if tail == "" {
		return fmt.Errorf("%w (see %s)", err, log.Name())
	}
	return fmt.Errorf("%w (see %s); its last lines:\n%s", err, log.Name(), tail)
}
