package metrics

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// Fleet is the daemon of a --config edgepoll: one Metrics and one Health per
// connection, served together. Every metric of a connection carries its
// name as the label connection; the Go and process metrics are the
// process's, once.
type Fleet struct {
	names   []string
	Metrics []*Metrics
	Health  []*Health
	gather  prometheus.Gatherers
	// one: a single connection given by flags, served as it always was
	// (no connection label, /ready of one connection, see NewOne).
	one bool
}

// NewOne is the metrics and health of a single connection given by flags:
// its metrics carry no connection label and /ready answers for it alone.
// With process set, the Go runtime and process collectors are registered
// (the daemon); a one-shot textfile leaves them out.
func NewOne(sink string, process bool) *Fleet {
	m := New(sink, process)
	return &Fleet{names: []string{""}, Metrics: []*Metrics{m}, Health: []*Health{NewHealth()}, gather: prometheus.Gatherers{m.Registry}, one: true}
}

// NewFleet builds the metrics and health of the named connections, each
// delivering to its sink (mode).
func NewFleet(names, sinks []string) *Fleet {
	proc := prometheus.NewRegistry()
	proc.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := &Fleet{names: names, gather: prometheus.Gatherers{proc}}
	for i, name := range names {
		m := New(sinks[i], false)
		f.Metrics = append(f.Metrics, m)
		f.Health = append(f.Health, NewHealth())
		f.gather = append(f.gather, labeled{g: m.Registry, name: "connection", value: name})
	}
	return f
}

// HealthOnly is the health of n connections without metrics (each
// Metrics entry nil): a daemon that serves no endpoints keeps no
// Prometheus series, only what its heartbeats follow.
func HealthOnly(n int) *Fleet {
	f := &Fleet{names: make([]string, n), Metrics: make([]*Metrics, n), Health: make([]*Health, n)}
	for i := range f.Health {
		f.Health[i] = NewHealth()
	}
	return f
}

// WriteTextfile writes every connection's metrics (one-shot --metrics-file).
func (f *Fleet) WriteTextfile(path string) error {
	if f.one {
		return f.Metrics[0].WriteTextfile(path)
	}
	return prometheus.WriteToTextfile(path, f.gather[1:])
}

// Stopping marks the start of shutdown for every connection.
func (f *Fleet) Stopping() {
	for _, h := range f.Health {
		h.Stopping()
	}
}

// connReady is one connection in /ready's answer.
type connReady struct {
	Name    string `json:"name"`
	Ready   bool   `json:"ready"`
	Polling bool   `json:"polling"`
	Error   string `json:"error,omitempty"`
}

// fleetReadyBody is /ready's answer when a connection is not ready: the
// single-connection fields (polling: every connection's poll works; error:
// how many are not ready) and each connection's state.
type fleetReadyBody struct {
	readyBody
	Connections []connReady `json:"connections"`
}

// Handler serves /health (503 once stopping), /ready (204 only when every
// connection is ready, else 503 naming each connection's state) and
// /metrics.
func (f *Fleet) Handler() http.Handler {
	if f.one {
		return f.Health[0].Handler(f.Metrics[0])
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", liveness(func() bool {
		for _, h := range f.Health {
			if h.isStopping() {
				return true
			}
		}
		return false
	}))
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		body := fleetReadyBody{readyBody: readyBody{Component: "edge_connector", Polling: true}}
		notReady := 0
		for i, h := range f.Health {
			h.mu.Lock()
			c := connReady{Name: f.names[i], Ready: h.ready && !h.stopping, Polling: h.polling && !h.stopping, Error: h.reason}
			if h.stopping {
				c.Error = "shutting down"
			}
			h.mu.Unlock()
			if c.Ready {
				c.Error = ""
			} else {
				notReady++
			}
			body.Polling = body.Polling && c.Polling
			body.Connections = append(body.Connections, c)
		}
		if notReady == 0 {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		body.Error = fmt.Sprintf("%d of %d connections not ready", notReady, len(f.Health))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(body)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(f.gather, promhttp.HandlerOpts{}))
	return mux
}

// labeled adds one label to every metric g gathers.
type labeled struct {
	g           prometheus.Gatherer
	name, value string
}

func (l labeled) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := l.g.Gather()
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			m.Label = append(m.Label, &dto.LabelPair{Name: &l.name, Value: &l.value})
		}
	}
	return mfs, err
}
