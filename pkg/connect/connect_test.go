package connect

import (
	"strings"
	"testing"
	"time"

	"github.com/exo-in-go/exo/pkg/tunnel"
)

func TestBackoffFullJitterWithinExponentialCeiling(t *testing.T) {
	b := backoff{initial: 100 * time.Millisecond, max: 2 * time.Second}
	for attempt := range 40 {
		ceiling := min(b.max, b.initial<<min(attempt, 31))
		if d := b.next(); d < 0 || d > ceiling {
			t.Fatalf("attempt %d: wait %s outside [0, %s]", attempt, d, ceiling)
		}
	}
	b.reset()
	if d := b.next(); d > b.initial {
		t.Fatalf("after reset: %s > %s", d, b.initial)
	}
}

func TestOptionsFromEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	o, err := OptionsFromEnv(env(map[string]string{"HOSTNAME": "mgr-0", "POD_NAMESPACE": "agentkube-system"}))
	if err != nil || o.Managed || o.ClusterID != "agentkube-system/mgr-0" {
		t.Fatalf("unmanaged defaults: %+v %v", o, err)
	}
	if _, err := OptionsFromEnv(env(map[string]string{"AGENTKUBE_MANAGED": "true"})); err == nil || !strings.Contains(err.Error(), "AGENTKUBE_AUTH_TOKEN") {
		t.Fatalf("managed without a token: %v", err)
	}
	if _, err := OptionsFromEnv(env(map[string]string{"AGENTKUBE_MANAGED": "yes please"})); err == nil {
		t.Fatal("bad AGENTKUBE_MANAGED accepted")
	}
	if _, err := OptionsFromEnv(env(map[string]string{"AGENTKUBE_MANAGED": "true", "AGENTKUBE_AUTH_TOKEN": "t", "AGENTKUBE_BASE_URL": "ftp://x"})); err == nil {
		t.Fatal("ftp base URL accepted")
	}
	o, err = OptionsFromEnv(env(map[string]string{"AGENTKUBE_MANAGED": "true", "AGENTKUBE_AUTH_TOKEN": "t", "AGENTKUBE_CLUSTER_ID": "prod", "AGENTKUBE_HEARTBEAT_INTERVAL": "5s"}))
	if err != nil || !o.Managed || o.ClusterID != "prod" || o.HeartbeatInterval != 5*time.Second {
		t.Fatalf("managed: %+v %v", o, err)
	}
	if u, _ := tunnel.ConnectURL(o.withDefaults().BaseURL); u != "wss://exo.adaptive.live/api/agentkube/connect" {
		t.Fatalf("default tunnel URL %s", u)
	}
}

func TestChunksStayUnderTheLimit(t *testing.T) {
	objs := make([]tunnel.Object, 100)
	for i := range objs {
		objs[i] = tunnel.Object{Kind: "Agent", Name: "a", Object: []byte(`{"x":"` + strings.Repeat("y", i*10) + `"}`)}
	}
	objs[50].Object = []byte(`"` + strings.Repeat("z", 10000) + `"`) // alone over the limit
	const limit = 2000
	ranges := chunks(len(objs), func(i int) *tunnel.Object { return &objs[i] }, limit)
	next := 0
	for _, r := range ranges {
		if r[0] != next || r[1] <= r[0] {
			t.Fatalf("ranges %v not contiguous", ranges)
		}
		next = r[1]
	}
	if next != len(objs) {
		t.Fatalf("ranges cover %d of %d objects", next, len(objs))
	}
	if objs[50].Object != nil {
		t.Fatal("an oversized object kept its body")
	}
	if r := chunks(0, nil, limit); len(r) != 1 || r[0] != [2]int{0, 0} {
		t.Fatalf("no objects: %v, want one empty (final) chunk", r)
	}
}
