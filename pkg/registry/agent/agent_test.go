package agent

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

func TestAgentletRequestCarriesOnlyTheAgentletToken(t *testing.T) {
	in := httptest.NewRequest(http.MethodGet, "https://manager/apis/x/attach?stdin=true&tty=true", nil)
	in.Header.Set("Authorization", "Bearer caller-token")
	in.Header.Set("X-Remote-User", "alice")
	in.Header.Set("X-Remote-Group", "system:masters")
	in.Header.Set("Impersonate-User", "admin")
	in.Header.Set("Sec-WebSocket-Protocol", "v5.channel.k8s.io")
	out := agentletRequest(in, "agentlet-token")

	if got := out.Header.Get("Authorization"); got != "Bearer agentlet-token" {
		t.Fatalf("Authorization = %q", got)
	}
	for name := range out.Header {
		if l := strings.ToLower(name); strings.HasPrefix(l, "x-remote-") || strings.HasPrefix(l, "impersonate-") {
			t.Fatalf("identity header %s reached the agentlet", name)
		}
	}
	if out.Header.Get("Sec-WebSocket-Protocol") != "v5.channel.k8s.io" || out.URL.RawQuery != "" {
		t.Fatalf("handshake not kept as is: %v %q", out.Header, out.URL.RawQuery)
	}
	if in.Header.Get("Authorization") != "Bearer caller-token" {
		t.Fatal("the caller's request was modified")
	}
}

func TestStreamLimiterRefusesBeyondItsCap(t *testing.T) {
	l := NewStreamLimiter(2)
	r1, err := l.TryAcquire()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.TryAcquire(); err != nil {
		t.Fatal(err)
	}
	_, err = l.TryAcquire()
	if !apierrors.IsTooManyRequests(err) {
		t.Fatalf("third stream: %v, want 429", err)
	}
	if d, ok := apierrors.SuggestsClientDelay(err); !ok || d != RetryAfterSeconds {
		t.Fatalf("429 without Retry-After: %v %v", d, ok)
	}
	r1()
	if _, err := l.TryAcquire(); err != nil {
		t.Fatalf("after a release: %v", err)
	}
	if l.InUse() != 2 {
		t.Fatalf("in use = %d", l.InUse())
	}
}

func TestGenerateNamePrefixKeepsGeneratedNamesValid(t *testing.T) {
	long := strings.Repeat("a", 253)
	if p := generateNamePrefix(long); len(p)+5 > 253 || !strings.HasSuffix(p, "-") {
		t.Fatalf("prefix of %d characters", len(p))
	}
	if p := generateNamePrefix("reviewer"); p != "reviewer-" {
		t.Fatalf("prefix = %q", p)
	}
}
