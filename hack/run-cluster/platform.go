package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Sign-in of the seeded administrator, the same as make run's. Local only: the UI is
// reachable on the host's loopback and nowhere else.
const (
	adminEmail    = "admin@exo.local"
	adminPassword = "exo-local-admin"
)

// forward is exo-app's entrance for the host's browser, where a cluster would have an
// Ingress: every connection accepted on ln is joined to a new one that dial opens to
// exo-app's Service from inside the node's network. It returns once ctx has ended and
// every connection it carried is closed.
func forward(ctx context.Context, ln net.Listener, dial func(context.Context) (net.Conn, error)) {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		client, err := ln.Accept()
		if err != nil {
			return // closed: ctx ended
		}
		conns.Go(func() { join(ctx, client, dial) })
	}
}

// join dials exo-app for client and copies both ways until both sides are done, or ctx
// ends and closes both.
func join(ctx context.Context, client net.Conn, dial func(context.Context) (net.Conn, error)) {
	defer client.Close()
	dialCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	server, err := dial(dialCtx)
	cancel()
	if err != nil {
		// exo-app not up yet, or going away: the browser sees the connection close.
		slog.Debug("forwarder: dialling exo-app", "err", err)
		return
	}
	defer server.Close()
	unhook := context.AfterFunc(ctx, func() {
		client.Close()
		server.Close()
	})
	defer unhook()
	var halves sync.WaitGroup
	for _, p := range [][2]net.Conn{{client, server}, {server, client}} {
		halves.Go(func() {
			_, _ = io.Copy(p[1], p[0])
			// Half-close, so a client that sends its request and then closes still gets
			// the answer.
			if hc, ok := p[1].(interface{ CloseWrite() error }); ok {
				_ = hc.CloseWrite()
			}
		})
	}
	halves.Wait()
}

// seed is what seeding exo-app made: the administrator's session and the deployment the
// node's manager connects as.
type seed struct {
	base            string
	session         string
	deploymentID    string
	deploymentToken string
}

// answer holds the fields of exo-app's answers that run-cluster reads.
type answer struct {
	Token      string `json:"token"`
	Deployment struct {
		ID string `json:"id"`
	} `json:"deployment"`
	Output string `json:"output"`
	Phase  string `json:"phase"`
}

// seedPlatform signs the administrator up with a new tenant and creates the deployment
// the runtime plane is managed as, through the host's forwarder as a browser would. It
// first waits for exo-app to answer there: its pod is Ready, but kube-proxy's rules for
// the Service may lag a moment.
func seedPlatform(ctx context.Context, base string) (*seed, error) {
	s := &seed{base: base}
	var last error
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		last = s.call(ctx, http.MethodGet, "/api/health", nil, nil)
		return last == nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for exo-app at %s (last: %v): %w", base, last, err)
	}
	var signedUp, created answer
	if err := s.call(ctx, http.MethodPost, "/api/v1/auth/signup", map[string]string{
		"email": adminEmail, "password": adminPassword, "name": "Local Admin", "tenant_name": "Local",
	}, &signedUp); err != nil {
		return nil, err
	}
	s.session = signedUp.Token
	if err := s.call(ctx, http.MethodPost, "/api/v1/deployments", map[string]string{"name": "run-cluster"}, &created); err != nil {
		return nil, err
	}
	s.deploymentID, s.deploymentToken = created.Deployment.ID, created.Token
	if s.session == "" || s.deploymentID == "" || s.deploymentToken == "" {
		return nil, fmt.Errorf("seeding exo-app: incomplete answers (session %t, deployment %q, token %t)",
			s.session != "", s.deploymentID, s.deploymentToken != "")
	}
	return s, nil
}

// invokeHello invokes the sample Agent from the dashboard's API until a run succeeds:
// the request crosses the forwarder, exo-app, the manager's tunnel (connected once the
// leader is elected) and the agentlet, which is everything the welcome promises.
func (s *seed) invokeHello(ctx context.Context) error {
	path := "/api/v1/deployments/" + s.deploymentID + "/agents/default/hello/invoke"
	var last error
	err := wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		var res answer
		if last = s.call(ctx, http.MethodPost, path, map[string]any{"input": "run-cluster", "timeout_seconds": 60}, &res); last != nil {
			return false, nil
		}
		if res.Phase != "Succeeded" || !strings.Contains(res.Output, "hello from") {
			last = fmt.Errorf("run %s with output %q", res.Phase, res.Output)
			return false, nil
		}
		slog.Info("the sample Agent answered", "output", strings.TrimSpace(res.Output))
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("invoking the sample Agent from the dashboard (last: %v): %w", last, err)
	}
	return nil
}

// call sends one request to exo-app's API, as JSON and with the session once there is
// one, and decodes a successful answer into out.
func (s *seed) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader = http.NoBody
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if s.session != "" {
		req.Header.Set("Authorization", "Bearer "+s.session)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	switch {
	case err != nil:
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	case res.StatusCode/100 != 2:
		return fmt.Errorf("%s %s: %s: %s", method, path, res.Status, bytes.TrimSpace(raw))
	case out == nil:
		return nil
	}
	return json.Unmarshal(raw, out)
}
