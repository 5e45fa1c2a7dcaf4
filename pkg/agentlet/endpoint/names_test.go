package endpoint

import (
	"strings"
	"testing"
)

// An Agent's name may be a 253-character DNS subdomain; its Secrets' names
// must stay valid, distinct and stable for any of them.
func TestSecretNamesFitAnyAgentName(t *testing.T) {
	long := strings.Repeat("a", 253)
	for _, agent := range []string{"hello", long, long[:250] + "bcd"} {
		tok, tlsName := TokenSecretName(agent), TLSSecretName(agent)
		if len(tok) > 253 || len(tlsName) > 253 || tok == tlsName {
			t.Fatalf("agent %d chars: token %q (%d), tls %q (%d)", len(agent), tok, len(tok), tlsName, len(tlsName))
		}
		if tok != TokenSecretName(agent) {
			t.Fatal("not stable")
		}
	}
	if TokenSecretName("hello") != "hello-agentlet" || TLSSecretName("hello") != "hello-agentlet-tls" {
		t.Fatalf("short names: %s, %s", TokenSecretName("hello"), TLSSecretName("hello"))
	}
	if TokenSecretName(long) == TokenSecretName(long[:250]+"bcd") {
		t.Fatal("two long names share a Secret")
	}
}
