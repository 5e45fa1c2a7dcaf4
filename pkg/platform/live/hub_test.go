package live

import (
	"encoding/json"
	"testing"
)

func TestHubHistoryAndOverflow(t *testing.T) {
	t.Parallel()
	h := NewHub(Options{History: 3, QueueLength: 2})
	defer h.Close()
	f := Filter{TenantID: "t"}

	slow := h.Subscribe(f, "")
	for i := range 5 {
		h.Publish(Event{TenantID: "t", Type: TypeCluster, Data: i + 1})
	}
	select {
	case <-slow.Done():
	default:
		t.Fatal("a subscriber that does not read must be dropped, not block Publish")
	}
	if !slow.Overflowed() {
		t.Fatal("drop not reported as overflow")
	}

	// The ring holds events 3..5: resuming after 1 would silently miss 2.
	if h.Subscribe(f, h.id(1)).Resumed() {
		t.Fatal("resumed across a gap in the history")
	}
	s := h.Subscribe(f, h.id(2))
	defer s.Close()
	if !s.Resumed() || seqs(s.replay) != "[3,4,5]" {
		t.Fatalf("resume after 2: resumed=%v replay=%s", s.Resumed(), seqs(s.replay))
	}
	if up := h.Subscribe(f, h.id(5)); !up.Resumed() || len(up.replay) != 0 {
		t.Fatal("an up-to-date client must resume with nothing to replay")
	}
	if h.Subscribe(f, h.id(6)).Resumed() {
		t.Fatal("an id from the future must resync")
	}
	s.Close()
	s.Close() // idempotent
}

func TestFilter(t *testing.T) {
	t.Parallel()
	h := NewHub(Options{})
	defer h.Close()
	h.Publish(Event{TenantID: "other", DeploymentID: "d1", Type: TypeCluster, Data: 1})                        // other tenant
	h.Publish(Event{TenantID: "t", DeploymentID: "d2", Type: TypeCluster, Data: 2})                            // other deployment
	h.Publish(Event{TenantID: "t", DeploymentID: "d1", Type: TypeCluster, Permission: "agents:read", Data: 3}) // lacks permission
	h.Publish(Event{TenantID: "t", DeploymentID: "d2", Type: TypeDeployment, Data: 4})                         // the status list stays live
	h.Publish(Event{TenantID: "t", DeploymentID: "d1", Type: TypeCluster, Data: 5})
	h.Publish(Event{TenantID: "t", Type: "", Data: 6})          // invalid: no type
	h.Publish(Event{TenantID: "t", Type: "x", Data: func() {}}) // invalid: not JSON
	s := h.Subscribe(Filter{TenantID: "t", DeploymentID: "d1", Permissions: []string{"deployments:read"}}, h.id(0))
	defer s.Close()
	if got := seqs(s.replay); got != "[4,5]" {
		t.Fatalf("delivered %s, want [4,5] (data values)", got)
	}
}

// seqs renders the Data of records (the tests publish their ordinal).
func seqs(rs []record) string {
	out := make([]json.RawMessage, len(rs))
	for i, r := range rs {
		out[i] = r.data
	}
	b, _ := json.Marshal(out)
	return string(b)
}

// BenchmarkPublishFanOut measures Publish with 100 subscribers that keep
// up (each drained by its own goroutine, as handlers do).
func BenchmarkPublishFanOut(b *testing.B) {
	h := NewHub(Options{QueueLength: 4096})
	var subs []*Subscription
	for range 100 {
		s := h.Subscribe(Filter{TenantID: "t"}, "")
		subs = append(subs, s)
		go func() {
			for {
				select {
				case <-s.ch:
				case <-s.Done():
					return
				}
			}
		}()
	}
	b.ReportAllocs()
	for b.Loop() {
		h.Publish(Event{TenantID: "t", Type: TypeDeployment, Data: DeploymentStatus{DeploymentID: "d", Status: "connected"}})
	}
	b.StopTimer()
	h.Close()
	dropped := 0
	for _, s := range subs {
		if s.Overflowed() {
			dropped++
		}
	}
	b.ReportMetric(float64(dropped), "dropped-subscribers")
}
