package runtimes

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

// recordingProxy is what an Agent's HTTP_PROXY and HTTPS_PROXY point at: it
// records every host a CLI tries to reach through it and refuses them all
// (403), as a cluster's egress proxy would. All five CLIs honour the proxy
// variables (each was seen reaching its vendor's hosts through one), so a
// CLI that tries a host other than its model server shows up here; NO_PROXY
// keeps the model server, on 127.0.0.1, direct. A connection that ignored
// the variables would not show: the test would then need a network
// namespace, which a test cannot have without privileges.
type recordingProxy struct {
	mu    sync.Mutex
	hosts []string
	srv   *httptest.Server
}

func startRecordingProxy(t testing.TB) *recordingProxy {
	p := &recordingProxy{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host // CONNECT host:port, or the absolute URI's host
		if r.URL.Host != "" {
			host = r.URL.Host
		}
		p.mu.Lock()
		p.hosts = append(p.hosts, host)
		p.mu.Unlock()
		http.Error(w, "egress refused by the test's proxy", http.StatusForbidden)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// env points a process at the proxy for everything but loopback.
func (p *recordingProxy) env() map[string]string {
	env := map[string]string{}
	for _, name := range []string{"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"} {
		env[name] = p.srv.URL
		env[strings.ToLower(name)] = p.srv.URL
	}
	env["NO_PROXY"], env["no_proxy"] = "127.0.0.1,localhost", "127.0.0.1,localhost"
	return env
}

// attempted returns the distinct hosts tried so far, sorted.
func (p *recordingProxy) attempted() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	hosts := slices.Clone(p.hosts)
	slices.Sort(hosts)
	return slices.Compact(hosts)
}
