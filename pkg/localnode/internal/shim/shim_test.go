//go:build linux

package shim

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// processesWith lists the processes whose environment holds marker.
func processesWith(marker string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		if bytes.Contains(env, []byte(marker)) {
			if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && strings.Contains(string(st), ") Z ") {
				continue // zombie waiting for its reaper
			}
			pids = append(pids, pid)
		}
	}
	return pids
}

func waitGone(t *testing.T, marker string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := processesWith(marker)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes still alive: %v", pids)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestExitCodeAndOutput(t *testing.T) {
	r, w, _ := os.Pipe()
	p, err := Start(Spec{Path: "/bin/sh", Argv: []string{"sh", "-c", "echo out; exit 7"}, Stdout: w})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	_, _ = out.ReadFrom(r)
	res := p.Result()
	if res.ExitCode != 7 || res.Signal != 0 {
		t.Fatalf("result %+v, want exit 7", res)
	}
	if out.String() != "out\n" {
		t.Fatalf("output %q", out.String())
	}
}

func TestStartError(t *testing.T) {
	_, err := Start(Spec{Path: "/nonexistent/bin", Argv: []string{"bin"}})
	var se *StartError
	if !errors.As(err, &se) {
		t.Fatalf("err %v, want StartError", err)
	}
	if !strings.Contains(se.Msg, "no such file") {
		t.Fatalf("message %q", se.Msg)
	}
}

func TestSignalReported(t *testing.T) {
	marker := "SHIMTEST_SIGNAL=" + strconv.Itoa(os.Getpid())
	p, err := Start(Spec{Path: "/bin/sleep", Argv: []string{"sleep", "100"}, Env: []string{marker}})
	if err != nil {
		t.Fatal(err)
	}
	p.Terminate()
	res := p.Result()
	if res.Signal != syscall.SIGTERM || res.ExitCode != 143 {
		t.Fatalf("result %+v, want SIGTERM", res)
	}
	waitGone(t, marker)
}

// TestKillTakesEscapedDescendants: background jobs, a new session (setsid) and a
// double fork are all killed.
func TestKillTakesEscapedDescendants(t *testing.T) {
	marker := "SHIMTEST_ESCAPE=" + strconv.Itoa(os.Getpid())
	script := `sleep 1001 & setsid sleep 1002 & (setsid sh -c 'sleep 1003 & sleep 1004' &) ; echo ready; wait`
	r, w, _ := os.Pipe()
	p, err := Start(Spec{Path: "/bin/sh", Argv: []string{"sh", "-c", script}, Env: []string{marker, "PATH=/usr/bin:/bin"}, Stdout: w})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	if _, err := r.Read(buf); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(processesWith(marker)) < 6 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(processesWith(marker)); n < 6 {
		t.Fatalf("expected shim, sh and 4 sleeps, found %d", n)
	}
	p.Kill()
	<-p.Done()
	waitGone(t, marker)
}

// TestMainExitKillsLeftovers: when the main process ends, what it left behind
// ends too, as in a container.
func TestMainExitKillsLeftovers(t *testing.T) {
	marker := "SHIMTEST_LEFTOVER=" + strconv.Itoa(os.Getpid())
	p, err := Start(Spec{Path: "/bin/sh", Argv: []string{"sh", "-c", "setsid sleep 1005 & sleep 0.2; exit 3"}, Env: []string{marker, "PATH=/usr/bin:/bin"}})
	if err != nil {
		t.Fatal(err)
	}
	if res := p.Result(); res.ExitCode != 3 {
		t.Fatalf("result %+v", res)
	}
	waitGone(t, marker)
}
