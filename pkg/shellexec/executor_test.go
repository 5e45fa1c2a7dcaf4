package shellexec

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
)

// TestRefusedWebSocketUpgradeFallsBackToSPDY runs client-go's executors
// against a server that refuses the WebSocket upgrade, as an older API
// server or a proxy that only passes SPDY does: the shell must try SPDY next
// instead of failing.
func TestRefusedWebSocketUpgradeFallsBackToSPDY(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+strings.ToLower(r.Header.Get("Upgrade")))
		mu.Unlock()
		http.Error(w, "upgrade refused", http.StatusBadRequest)
	}))
	defer srv.Close()

	u, err := url.Parse(srv.URL + "/api/v1/namespaces/ns/pods/p/exec?command=sh&stdin=true&stdout=true&tty=true")
	if err != nil {
		t.Fatal(err)
	}
	ex, err := newExecutor(&rest.Config{Host: srv.URL}, u)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: strings.NewReader(""), Stdout: &strings.Builder{}, Tty: true})
	if err == nil {
		t.Fatal("stream succeeded against a server that refuses every upgrade")
	}

	mu.Lock()
	defer mu.Unlock()
	want := []string{"GET websocket", "POST spdy/3.1"}
	if len(seen) != len(want) || seen[0] != want[0] || seen[1] != want[1] {
		t.Fatalf("requests %q, want %q: the refused WebSocket upgrade did not fall back to SPDY (last error: %v)", seen, want, err)
	}
}
