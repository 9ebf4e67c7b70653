// Package ilerttest is an in-process fake of the ilert edge-connections API
// (like net/http/httptest for ilert): a queue of items per connection key,
// the poll endpoint with after-id paging, server-managed HA with leader
// election, the heartbeat endpoint, request recording and fault injection.
//
// It serves edgepoll's tests and `make demo`.
package ilerttest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Item is one queued edge item.
type Item struct {
	ID      int64
	Payload json.RawMessage
}

// Request is a recorded poll or heartbeat request.
type Request struct {
	Path          string
	Query         map[string]string
	Authorization string
	UserAgent     string
	Accept        string
	At            time.Time
}

// Fault replaces the answer to one poll.
type Fault struct {
	// Status to answer with (0: 200).
	Status int
	// Body to send raw instead of the real batch (nil: the real batch).
	Body []byte
	// Delay before answering (simulates a slow or hung API).
	Delay time.Duration
	// Drop closes the connection without an answer.
	Drop bool
}

// API is a fake ilert API. Create it with New; it is safe for concurrent use.
type API struct {
	mu        sync.Mutex
	keys      map[string]*queue // connector key -> queue
	reqs      []Request
	faults    []Fault
	beats     map[string]int
	leaderTTL time.Duration
	now       func() time.Time
	beatFail  bool
}

// FailHeartbeats makes the heartbeat endpoint answer 500 (or 202 again).
func (a *API) FailHeartbeats(fail bool) {
	a.mu.Lock()
	a.beatFail = fail
	a.mu.Unlock()
}

type queue struct {
	items []Item // ascending ids
	next  int64
	// HA state per cluster id.
	clusters map[string]*cluster
}

type cluster struct {
	leader     string
	lastSeen   time.Time
	serverCurs int64
}

// New returns an API with one connection per key.
func New(keys ...string) *API {
	a := &API{keys: map[string]*queue{}, beats: map[string]int{}, leaderTTL: 30 * time.Second, now: time.Now}
	for _, k := range keys {
		a.keys[k] = &queue{clusters: map[string]*cluster{}}
	}
	return a
}

// SetLeaderTTL sets after how long without a poll an HA leader loses its
// role to the next instance that polls (default 30s).
func (a *API) SetLeaderTTL(d time.Duration) {
	a.mu.Lock()
	a.leaderTTL = d
	a.mu.Unlock()
}

// Push queues payloads for key with fresh ascending ids and returns the ids.
func (a *API) Push(key string, payloads ...json.RawMessage) []int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	q := a.queueLocked(key)
	ids := make([]int64, 0, len(payloads))
	for _, p := range payloads {
		q.next++
		q.items = append(q.items, Item{ID: q.next, Payload: append(json.RawMessage(nil), p...)})
		ids = append(ids, q.next)
	}
	return ids
}

// queueLocked returns key's queue, made on first use (a.mu held).
func (a *API) queueLocked(key string) *queue {
	q := a.keys[key]
	if q == nil {
		q = &queue{clusters: map[string]*cluster{}}
		a.keys[key] = q
	}
	return q
}

// PushItems queues items with explicit ids (they may be out of order or
// duplicated, to test the client).
func (a *API) PushItems(key string, items ...Item) {
	a.mu.Lock()
	defer a.mu.Unlock()
	q := a.queueLocked(key)
	for _, it := range items {
		q.items = append(q.items, it)
		if it.ID > q.next {
			q.next = it.ID
		}
	}
	sort.SliceStable(q.items, func(i, j int) bool { return q.items[i].ID < q.items[j].ID })
}

// Fail queues faults: the next len(f) polls get them, in order.
func (a *API) Fail(f ...Fault) {
	a.mu.Lock()
	a.faults = append(a.faults, f...)
	a.mu.Unlock()
}

// Requests returns the recorded poll requests.
func (a *API) Requests() []Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Request(nil), a.reqs...)
}

// Heartbeats returns how often key's heartbeat was pinged.
func (a *API) Heartbeats(key string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.beats[key]
}

// Leader returns the current HA leader of clusterID for key.
func (a *API) Leader(key, clusterID string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if q := a.keys[key]; q != nil {
		if c := q.clusters[clusterID]; c != nil {
			return c.leader
		}
	}
	return ""
}

// Start serves the API on a loopback port; Close the server when done.
func (a *API) Start() *httptest.Server { return httptest.NewServer(a) }

// ServeHTTP implements the API.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/api/edge-connections/events" && r.Method == http.MethodGet:
		a.poll(w, r)
	case strings.HasPrefix(r.URL.Path, "/api/heartbeats/"):
		key := strings.TrimPrefix(r.URL.Path, "/api/heartbeats/")
		a.mu.Lock()
		a.reqs = append(a.reqs, a.record(r))
		fail := a.beatFail
		if !fail {
			a.beats[key]++
		}
		a.mu.Unlock()
		if fail {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	default:
		http.NotFound(w, r)
	}
}

func (a *API) record(r *http.Request) Request {
	q := map[string]string{}
	for k, v := range r.URL.Query() {
		q[k] = strings.Join(v, ",")
	}
	return Request{Path: r.URL.Path, Query: q, Authorization: r.Header.Get("Authorization"),
		UserAgent: r.Header.Get("User-Agent"), Accept: r.Header.Get("Accept"), At: a.now()}
}

func (a *API) poll(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.reqs = append(a.reqs, a.record(r))
	var fault *Fault
	if len(a.faults) > 0 {
		f := a.faults[0]
		a.faults = a.faults[1:]
		fault = &f
	}
	a.mu.Unlock()

	if fault != nil {
		if fault.Delay > 0 {
			select {
			case <-time.After(fault.Delay):
			case <-r.Context().Done():
				return
			}
		}
		if fault.Drop {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
		}
		if fault.Status != 0 || fault.Body != nil {
			st := fault.Status
			if st == 0 {
				st = http.StatusOK
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(st)
			_, _ = w.Write(fault.Body)
			return
		}
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	q := a.keys[r.Header.Get("Authorization")]
	if q == nil {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"message":"unauthorized"}`))
		return
	}
	qs := r.URL.Query()
	limit, err := strconv.Atoi(qs.Get("limit"))
	if err != nil || limit <= 0 || limit > 1000 {
		http.Error(w, `{"message":"bad limit"}`, http.StatusBadRequest)
		return
	}
	resp := struct {
		Items []Item  `json:"-"`
		Role  *string `json:"role,omitempty"`
	}{}
	var after int64
	if cid := qs.Get("cluster-id"); cid != "" {
		inst := qs.Get("instance-id")
		if inst == "" {
			http.Error(w, `{"message":"instance-id required"}`, http.StatusBadRequest)
			return
		}
		c := q.clusters[cid]
		if c == nil {
			c = &cluster{}
			q.clusters[cid] = c
		}
		now := a.now()
		if c.leader == "" || (c.leader != inst && now.Sub(c.lastSeen) > a.leaderTTL) {
			c.leader = inst
		}
		role := "standby"
		if c.leader == inst {
			role = "leader"
			c.lastSeen = now
			if lp, err := strconv.ParseInt(qs.Get("last-processed-id"), 10, 64); err == nil && lp > c.serverCurs {
				c.serverCurs = lp
			}
			after = c.serverCurs
		}
		resp.Role = &role
		if role == "standby" {
			writeBatch(w, nil, resp.Role)
			return
		}
	} else {
		after, err = strconv.ParseInt(qs.Get("after-id"), 10, 64)
		if err != nil {
			http.Error(w, `{"message":"bad after-id"}`, http.StatusBadRequest)
			return
		}
	}
	var out []Item
	for _, it := range q.items {
		if it.ID > after {
			out = append(out, it)
			if len(out) == limit {
				break
			}
		}
	}
	writeBatch(w, out, resp.Role)
}

func writeBatch(w http.ResponseWriter, items []Item, role *string) {
	var sb strings.Builder
	sb.WriteString(`{"items":[`)
	for i, it := range items {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"id":%d,"payload":%s}`, it.ID, it.Payload)
	}
	sb.WriteString("]")
	if role != nil {
		fmt.Fprintf(&sb, `,"role":%q`, *role)
	}
	sb.WriteString("}")
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(sb.String()))
}

// AlertEvents returns n realistic ilert webhook payloads: alerts created,
// some acknowledged, some resolved, with varied sources and priorities.
func AlertEvents(n int) []json.RawMessage {
	sources := []string{"Prometheus prod", "Datadog", "Grafana", "AWS CloudWatch", "Zabbix"}
	summaries := []string{"Server down", "Disk 95% full on db-01", "High latency on checkout API",
		"Certificate expires in 7 days", "Pod crash-looping: payments-7f9c", "Queue backlog > 10k"}
	kinds := []string{"alert-created", "alert-acknowledged", "alert-resolved"}
	status := map[string]string{"alert-created": "PENDING", "alert-acknowledged": "ACCEPTED", "alert-resolved": "RESOLVED"}
	base := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	out := make([]json.RawMessage, 0, n)
	for i := 0; i < n; i++ {
		alert := 100 + i/3 // each alert: created, acknowledged, resolved
		kind := kinds[i%3]
		if i%7 == 6 { // not every alert goes through all three states
			kind = "alert-created"
			alert = 5000 + i
		}
		p := map[string]any{
			"id":          strconv.Itoa(alert),
			"eventType":   kind,
			"summary":     summaries[(alert)%len(summaries)],
			"status":      status[kind],
			"priority":    []string{"HIGH", "LOW"}[alert%2],
			"alertKey":    fmt.Sprintf("%s-%d", strings.ToLower(strings.Fields(sources[alert%len(sources)])[0]), alert),
			"timestamp":   base.Add(time.Duration(i) * 17 * time.Second).Format("2006-01-02T15:04:05.000Z"),
			"alertSource": map[string]any{"id": 9000 + alert%len(sources), "name": sources[alert%len(sources)]},
		}
		b, _ := json.Marshal(p)
		out = append(out, b)
	}
	return out
}
