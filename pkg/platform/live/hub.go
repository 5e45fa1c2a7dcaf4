// Package live pushes changes to browsers as Server-Sent Events: deployment
// status and heartbeats, cluster-view changes of a deployment, and anything
// else the platform wants a dashboard to see without reloading.
//
// Producers (the operator tunnel, API handlers) call Hub.Publish; it never
// blocks. Each browser stream is a Subscription with a bounded queue: a
// browser that stops reading is disconnected instead of slowing the
// producer, and it catches up on reconnect by sending the id of the last
// event it saw (Last-Event-ID). The hub keeps a ring of recent events for
// that replay; a client that fell further behind, or that reconnects to
// another replica or a restarted process (the id carries a per-process
// epoch), is told to resync and reloads its state through the REST API.
package live

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Event types published by the platform. The browser ignores types it does
// not know, so producers can add types without a UI change.
const (
	// TypeDeployment carries a deployment's status and last heartbeat
	// (DeploymentStatus). Visible with deployments:read.
	TypeDeployment = "deployment"
	// TypeCluster says a deployment's cluster view changed (ClusterChange);
	// the browser refetches the objects it shows. Visible with agents:read.
	TypeCluster = "cluster"
)

// Event is one change. TenantID scopes it: only browsers signed in to that
// tenant receive it. DeploymentID, when set, lets a browser that watches one
// deployment skip the others' cluster events. Permission, when set, is the
// `resource:verb` a subscriber must hold to receive it.
type Event struct {
	TenantID     string
	DeploymentID string
	Type         string
	Permission   string
	// Data is marshalled to JSON once, in Publish.
	Data any
}

// DeploymentStatus is the Data of a TypeDeployment event.
type DeploymentStatus struct {
	DeploymentID    string     `json:"deployment_id"`
	Status          string     `json:"status"`
	LastHeartbeatAt *time.Time `json:"last_heartbeat_at,omitempty"`
	// Removed is true when the deployment was deleted.
	Removed bool `json:"removed,omitempty"`
	// Change says what changed (ChangeCreated, ChangeDeleted,
	// ChangeTokenRotated, ChangeStatus). It is not sent to browsers: it is
	// for in-process observers such as the operator tunnel, which must close
	// a connection made with a rotated or deleted token.
	Change string `json:"-"`
}

// Values of DeploymentStatus.Change.
const (
	ChangeCreated      = "created"
	ChangeDeleted      = "deleted"
	ChangeTokenRotated = "token_rotated"
	ChangeStatus       = "status"
)

// Observer receives every published event, of every tenant, in the
// publisher's goroutine. It must not block: it runs on the path of API
// handlers and the tunnel.
type Observer func(Event)

// Observable is implemented by publishers that let in-process components
// react to events (*Hub does). The operator tunnel uses it to learn that a
// deployment's token was rotated or the deployment deleted; a publisher that
// spans replicas would deliver the same events to every replica.
type Observable interface {
	Observe(Observer) (stop func())
}

// ClusterChange is the Data of a TypeCluster event: which objects of the
// deployment's cluster view changed. Kinds is a hint (e.g. "Agent",
// "AgentRun", "Pod"); empty means "anything, reload the view".
type ClusterChange struct {
	DeploymentID string   `json:"deployment_id"`
	Kinds        []string `json:"kinds,omitempty"`
	// Resync is true after a full snapshot replaced the view.
	Resync bool `json:"resync,omitempty"`
}

// Publisher is what producers depend on. *Hub implements it; a nil-safe
// Discard is available for callers that run without a UI.
type Publisher interface {
	Publish(Event)
}

// Discard is a Publisher that drops every event.
var Discard Publisher = discard{}

type discard struct{}

func (discard) Publish(Event) {}

// record is an event as stored in the ring and queued to subscribers: the
// JSON is encoded once, whatever the number of subscribers.
type record struct {
	seq          uint64
	tenantID     string
	deploymentID string
	typ          string
	permission   string
	data         []byte
}

// Options tune a Hub. Zero values pick the defaults.
type Options struct {
	// History is how many recent events are kept for Last-Event-ID replay.
	History int
	// QueueLength is each subscriber's buffer; a subscriber whose buffer is
	// full is disconnected (it resumes with Last-Event-ID).
	QueueLength int
}

// Hub fans published events out to subscriptions and keeps a bounded
// history for resuming streams.
type Hub struct {
	epoch string
	queue int

	mu     sync.Mutex
	seq    uint64
	ring   []record // circular, len == cap once full
	next   int      // index of the next write in ring
	subs   map[*Subscription]struct{}
	closed bool

	obsMu     sync.Mutex
	observers map[*Observer]struct{}
}

// NewHub returns a hub with a fresh epoch.
func NewHub(opts Options) *Hub {
	if opts.History <= 0 {
		opts.History = 4096
	}
	if opts.QueueLength <= 0 {
		opts.QueueLength = 256
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return &Hub{
		epoch: hex.EncodeToString(b),
		queue: opts.QueueLength,
		ring:  make([]record, 0, opts.History),
		subs:  map[*Subscription]struct{}{},

		observers: map[*Observer]struct{}{},
	}
}

// Observe registers fn for every event published from now on, whatever its
// tenant; stop unregisters it.
func (h *Hub) Observe(fn Observer) (stop func()) {
	key := &fn
	h.obsMu.Lock()
	h.observers[key] = struct{}{}
	h.obsMu.Unlock()
	return func() {
		h.obsMu.Lock()
		delete(h.observers, key)
		h.obsMu.Unlock()
	}
}

// notify calls the observers outside h.mu, so an observer may publish.
func (h *Hub) notify(e Event) {
	h.obsMu.Lock()
	obs := make([]Observer, 0, len(h.observers))
	for o := range h.observers {
		obs = append(obs, *o)
	}
	h.obsMu.Unlock()
	for _, o := range obs {
		o(e)
	}
}

// Publish records e and queues it to every matching subscription. It never
// blocks: a subscription whose queue is full is closed as overflowed. Data
// that cannot be encoded is dropped (a programming error in the producer).
func (h *Hub) Publish(e Event) {
	if e.TenantID == "" || e.Type == "" {
		return
	}
	data, err := json.Marshal(e.Data)
	if err != nil {
		return
	}
	h.notify(e)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.seq++
	r := record{seq: h.seq, tenantID: e.TenantID, deploymentID: e.DeploymentID, typ: e.Type, permission: e.Permission, data: data}
	if len(h.ring) < cap(h.ring) {
		h.ring = append(h.ring, r)
	} else {
		h.ring[h.next] = r
	}
	h.next = (h.next + 1) % cap(h.ring)
	for s := range h.subs {
		if !s.filter.matches(r) {
			continue
		}
		select {
		case s.ch <- r:
		default:
			h.dropLocked(s, true)
		}
	}
}

// Close ends every subscription; later publishes are ignored.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		h.dropLocked(s, false)
	}
}

// Filter selects the events a subscription receives.
type Filter struct {
	TenantID string
	// DeploymentID, when set, drops events of other deployments that carry
	// a deployment id, except TypeDeployment (the status list stays live).
	DeploymentID string
	// Permissions the subscriber holds; events naming another permission are dropped.
	Permissions []string
}

func (f Filter) matches(r record) bool {
	if r.tenantID != f.TenantID {
		return false
	}
	if f.DeploymentID != "" && r.deploymentID != "" && r.deploymentID != f.DeploymentID && r.typ != TypeDeployment {
		return false
	}
	if r.permission != "" {
		for _, p := range f.Permissions {
			if p == r.permission {
				return true
			}
		}
		return false
	}
	return true
}

// Subscription is one consumer's view of the hub.
type Subscription struct {
	hub    *Hub
	filter Filter
	ch     chan record
	done   chan struct{}
	// Replay holds the events after the requested Last-Event-ID, in order,
	// to be sent before anything from C.
	replay []record
	// Resumed reports whether the requested Last-Event-ID could be honoured.
	resumed    bool
	overflowed bool
	once       sync.Once
}

// Subscribe registers a subscription. lastEventID is the id the client last
// saw ("" for a fresh stream); when the hub still holds every event after
// it, they are returned for replay and Resumed reports true.
func (h *Hub) Subscribe(f Filter, lastEventID string) *Subscription {
	s := &Subscription{hub: h, filter: f, ch: make(chan record, h.queue), done: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		s.once.Do(func() { close(s.done) })
		return s
	}
	if after, ok := h.parseID(lastEventID); ok && h.holdsAfter(after) {
		s.resumed = true
		for _, r := range h.orderedLocked() {
			if r.seq > after && f.matches(r) {
				s.replay = append(s.replay, r)
			}
		}
	}
	h.subs[s] = struct{}{}
	return s
}

// Resumed reports whether the stream continues from the client's Last-Event-ID.
func (s *Subscription) Resumed() bool { return s.resumed }

// Done is closed when the hub drops the subscription (overflow or Close).
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Overflowed reports whether the subscription was dropped for falling behind.
func (s *Subscription) Overflowed() bool {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	return s.overflowed
}

// Close unregisters the subscription.
func (s *Subscription) Close() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	s.hub.dropLocked(s, false)
}

func (h *Hub) dropLocked(s *Subscription, overflow bool) {
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		s.overflowed = overflow
	}
	s.once.Do(func() { close(s.done) })
}

// id formats an event id: epoch and sequence, so an id from another process
// never resumes into the wrong history.
func (h *Hub) id(seq uint64) string { return h.epoch + "-" + strconv.FormatUint(seq, 10) }

func (h *Hub) parseID(id string) (uint64, bool) {
	epoch, seq, ok := strings.Cut(id, "-")
	if !ok || epoch != h.epoch {
		return 0, false
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// holdsAfter reports whether every event after seq is still in the ring.
func (h *Hub) holdsAfter(seq uint64) bool {
	if seq > h.seq {
		return false
	}
	if seq == h.seq {
		return true
	}
	oldest := h.seq - uint64(len(h.ring)) + 1
	return seq+1 >= oldest
}

func (h *Hub) orderedLocked() []record {
	if len(h.ring) < cap(h.ring) {
		return h.ring
	}
	out := make([]record, 0, len(h.ring))
	out = append(out, h.ring[h.next:]...)
	return append(out, h.ring[:h.next]...)
}

// String describes the hub for logs.
func (h *Hub) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return fmt.Sprintf("live.Hub{epoch=%s seq=%d subscribers=%d}", h.epoch, h.seq, len(h.subs))
}
