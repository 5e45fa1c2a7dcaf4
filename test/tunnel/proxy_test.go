package tunnel_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/exo-in-go/exo/pkg/connect"
	"github.com/exo-in-go/exo/pkg/platform/agentkube"
	"github.com/exo-in-go/exo/pkg/platform/store"
	"github.com/exo-in-go/exo/test/poll"
)

// nginxConf is the seed's ingress in nginx terms: WebSocket upgrades passed through to
// exo-app. The read timeout is deliberately short (the seed's ingress uses 3600 s) so
// that the test shows heartbeats keeping an otherwise idle tunnel open across several
// of the proxy's idle windows.
const nginxConf = `
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 256; }
http {
  access_log %[1]s/access.log;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  server {
    listen 127.0.0.1:%[2]d;
    location / {
      proxy_pass http://%[3]s;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_read_timeout %[4]s;
      proxy_send_timeout %[4]s;
    }
  }
}
`

// startNginx runs nginx (Debian's package; hack/install-nginx.sh) in front of upstream.
func startNginx(t *testing.T, upstream, readTimeout string) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/nginx"); err != nil {
			t.Fatal("nginx is not installed: run hack/install-nginx.sh")
		}
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, dir, port, upstream, readTimeout), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "-p", dir, "-c", conf, "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		_ = cmd.Wait()
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	poll.Until(t, 30*time.Second, func() error {
		resp, err := http.Get(base + "/api/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("through nginx: %s (%s)", resp.Status, out.String())
		}
		return nil
	})
	return base
}

// TestTunnelThroughNginx puts a real nginx in front of exo-app, configured like the
// seed's ingress, and checks that the operator's tunnel connects through it, carries
// deltas, and holds across several proxy idle timeouts without reconnecting.
func TestTunnelThroughNginx(t *testing.T) {
	ns := cluster.CreateNamespace(t)
	p := startPlatform(t, map[string]string{"EXO_TUNNEL_HEARTBEAT_INTERVAL": "500ms"})
	proxied := startNginx(t, p.addr, "2s")
	jwt, id, token := p.deployment("proxy@example.com")
	startOperator(t, proxied, token, func(o *connect.Options) { o.HeartbeatInterval = 500 * time.Millisecond })
	waitConverged(t, p, jwt, id)

	var dep store.Deployment
	if code := p.do("GET", "/api/v1/deployments/"+id, jwt, nil, &dep); code != http.StatusOK {
		t.Fatalf("get deployment: %d", code)
	}
	// Three of nginx's 2 s idle windows, checking the status all along.
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		var d store.Deployment
		if code := p.do("GET", "/api/v1/deployments/"+id, jwt, nil, &d); code != http.StatusOK || d.Status != "connected" {
			t.Fatalf("deployment status %q (HTTP %d) while behind nginx", d.Status, code)
		}
	}
	// A change after the idle period still arrives as a delta over the same socket.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cluster.Client.Create(ctx, newAgent(ns, "after-idle")); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, p, jwt, id)

	events, err := p.store.ListAudit(ctx, dep.TenantID, store.Page{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if e.Action == agentkube.AuditDeploymentReconnected {
			t.Fatalf("the tunnel reconnected behind nginx (audit %s at %s)", e.Action, e.CreatedAt)
		}
	}
}
