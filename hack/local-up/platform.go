package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"time"
)

// Sign-in of the seeded administrator. Local only: the platform runs in dev mode on
// loopback.
const (
	adminEmail    = "admin@exo.local"
	adminPassword = "exo-local-admin"
	tenantName    = "Local"
)

type platform struct {
	proc        *process
	url         string
	deployToken string
	deployID    string
}

// startPlatform runs exo-app on SQLite in dir, then seeds a tenant with an
// administrator and a deployment whose token the manager uses.
func startPlatform(ctx context.Context, bin, dir string, port int, logw io.Writer) (*platform, error) {
	p := &platform{url: fmt.Sprintf("http://localhost:%d", port)}
	env := []string{
		fmt.Sprintf("EXO_PORT=%d", port),
		"EXO_BASE_URL=" + p.url,
		"EXO_DATABASE_DSN=" + filepath.Join(dir, "exo.db"),
		"EXO_CAST_STORAGE_DIR=" + filepath.Join(dir, "casts"),
		"EXO_DEV_MODE=true",
	}
	var err error
	if p.proc, err = startProcess("exo-app", logw, env, filepath.Join(bin, "exo-app")); err != nil {
		return nil, err
	}
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := waitHTTP(waitCtx, p.proc, p.url+"/api/health", nil); err != nil {
		return p, err
	}
	if err := p.seed(ctx); err != nil {
		return p, fmt.Errorf("seeding the platform: %w", err)
	}
	return p, nil
}

func (p *platform) seed(ctx context.Context) error {
	var session struct {
		Token string `json:"token"`
	}
	if err := p.call(ctx, "POST", "/api/v1/auth/signup", "", map[string]string{
		"email": adminEmail, "password": adminPassword, "name": "Local Admin", "tenant_name": tenantName,
	}, &session); err != nil {
		return err
	}
	var created struct {
		Token      string `json:"token"`
		Deployment struct {
			ID string `json:"id"`
		} `json:"deployment"`
	}
	if err := p.call(ctx, "POST", "/api/v1/deployments", session.Token, map[string]string{"name": "local"}, &created); err != nil {
		return err
	}
	p.deployToken, p.deployID = created.Token, created.Deployment.ID
	return nil
}

func (p *platform) call(ctx context.Context, method, path, token string, body, out any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, p.url+path, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, raw)
	}
	return json.Unmarshal(raw, out)
}
