// Package metrics exposes what edgepoll does: Prometheus metrics (an
// implementation of poll.Observer on a private registry), the daemon's
// /health, /ready and /metrics endpoints, and a node-exporter textfile for
// one-shot runs. No label ever carries a key, a URL or payload bytes: labels
// are the sink (the mode), poll results and bounded delivery reasons.
package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/edgepoll/edgepoll/poll"
)

// Metrics is a poll.Observer recording into its own registry.
type Metrics struct {
	Registry *prometheus.Registry
	sink     string

	polls        *prometheus.CounterVec
	pollDuration prometheus.Histogram
	items        *prometheus.CounterVec
	itemDuration *prometheus.HistogramVec
	cursor       prometheus.Gauge
	lastSuccess  prometheus.Gauge
	lastDelivery prometheus.Gauge
	deadLetters  prometheus.Counter
	role         *prometheus.GaugeVec
	backoff      prometheus.Gauge
	failures     prometheus.Gauge
	ready        prometheus.Gauge
	cycles       *prometheus.CounterVec
	heartbeats   *prometheus.CounterVec
	mu           sync.Mutex
	roles        map[string]bool
}

// New builds the metrics for a run delivering to sink (the mode). With
// process set, the Go runtime and process collectors are registered too
// (the daemon); a one-shot textfile leaves them out.
func New(sink string, process bool) *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry(), sink: sink, roles: map[string]bool{}}
	f := func(c prometheus.Collector) { m.Registry.MustRegister(c) }
	m.polls = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgepoll_polls_total",
		Help: "Polls of the ilert API by result (ok, or the failure reason)."}, []string{"result"})
	m.pollDuration = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "edgepoll_poll_duration_seconds",
		Help: "Duration of one poll of the ilert API.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 12)})
	m.items = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgepoll_items_total",
		Help: "Items handled by outcome (delivered, skipped = non-retryable failure, failed = retryable, filtered, stale = at or below the cursor in a poll answer, not delivered) and reason."},
		[]string{"sink", "outcome", "reason"})
	m.itemDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "edgepoll_delivery_duration_seconds",
		Help: "Time from handing an item to the sink to its result.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)},
		[]string{"sink"})
	m.cursor = prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgepoll_cursor", Help: "The stored cursor (edge item id): loaded at each cycle's start, then each persisted one."})
	m.lastSuccess = prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgepoll_last_success_timestamp_seconds",
		Help: "Unix time of the last successful cycle, poll and delivery (kept across runs in the state store)."})
	m.lastDelivery = prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgepoll_last_delivery_timestamp_seconds",
		Help: "Unix time of the last item delivered (kept across runs in the state store; 0: none yet)."})
	m.deadLetters = prometheus.NewCounter(prometheus.CounterOpts{Name: "edgepoll_dead_letters_total",
		Help: "Items skipped as non-retryable and written to the dead letter (--dead-letter)."})
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgepoll_build_info",
		Help: "Always 1; the version label is edgepoll's version.", ConstLabels: prometheus.Labels{"version": poll.Version}})
	buildInfo.Set(1)
	m.role = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "edgepoll_ha_role",
		Help: "1 for the current HA role (leader, standby)."}, []string{"role"})
	m.backoff = prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgepoll_backoff_seconds",
		Help: "Current wait before the next cycle after failures (0 when healthy)."})
	m.failures = prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgepoll_consecutive_failures",
		Help: "Consecutive failed cycles (one-shot runs: kept across runs in the state store)."})
	m.ready = prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgepoll_ready", Help: "1 while the last cycle succeeded (poll and delivery)."})
	m.cycles = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgepoll_cycles_total",
		Help: "Cycles by result (ok, lease_held, or the failure kind)."}, []string{"result"})
	m.heartbeats = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgepoll_heartbeats_total",
		Help: "Heartbeat pings by result (ok, error)."}, []string{"result"})
	for _, c := range []prometheus.Collector{m.polls, m.pollDuration, m.items, m.itemDuration, m.cursor, m.lastSuccess,
		m.lastDelivery, m.deadLetters, buildInfo, m.role, m.backoff, m.failures, m.ready, m.cycles, m.heartbeats} {
		f(c)
	}
	if process {
		f(collectors.NewGoCollector())
		f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return m
}

// Polled implements poll.Observer.
func (m *Metrics) Polled(result string, _ int, d time.Duration) {
	m.polls.WithLabelValues(result).Inc()
	m.pollDuration.Observe(d.Seconds())
}

// Item implements poll.Observer.
func (m *Metrics) Item(outcome poll.Outcome, reason string, d time.Duration) {
	m.items.WithLabelValues(m.sink, string(outcome), reason).Inc()
	if outcome == poll.OutcomeStale {
		return // never handed to the sink
	}
	m.itemDuration.WithLabelValues(m.sink).Observe(d.Seconds())
	if outcome == poll.OutcomeDelivered {
		m.lastDelivery.SetToCurrentTime()
	}
}

// DeadLettered implements poll.Observer.
func (m *Metrics) DeadLettered() { m.deadLetters.Inc() }

// Cursor implements poll.Observer.
func (m *Metrics) Cursor(c int64) { m.cursor.Set(float64(c)) }

// Role implements poll.Observer.
func (m *Metrics) Role(role string) {
	if role == "" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.roles[role] = true
	for r := range m.roles {
		v := 0.0
		if r == role {
			v = 1
		}
		m.role.WithLabelValues(r).Set(v)
	}
}

// Cycle records a daemon cycle report.
func (m *Metrics) Cycle(rep poll.CycleReport) {
	m.cycles.WithLabelValues(CycleResult(rep.Summary, rep.Err)).Inc()
	m.failures.Set(float64(rep.Failures))
	if rep.Failures > 0 {
		m.backoff.Set(rep.Wait.Seconds())
	} else {
		m.backoff.Set(0)
	}
	if rep.Ready {
		m.ready.Set(1)
	} else {
		m.ready.Set(0)
	}
	// The cycle's stored statistics (zero when it did not hold the lease):
	// the truth across runs, not just this process.
	if st := rep.Summary.Stats; !st.LastSuccess.IsZero() {
		m.lastSuccess.Set(unix(st.LastSuccess))
	}
	if st := rep.Summary.Stats; !st.LastDelivery.IsZero() {
		m.lastDelivery.Set(unix(st.LastDelivery))
	}
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// Heartbeat records a heartbeat ping.
func (m *Metrics) Heartbeat(err error) {
	if err != nil {
		m.heartbeats.WithLabelValues("error").Inc()
		return
	}
	m.heartbeats.WithLabelValues("ok").Inc()
}

// CycleResult is the bounded label of a cycle's outcome.
func CycleResult(sum poll.Summary, err error) string {
	if err != nil {
		if ce, ok := err.(*poll.CycleError); ok {
			return string(ce.Kind)
		}
		return "error"
	}
	if sum.LeaseHeld {
		return "lease_held"
	}
	return "ok"
}

// WriteTextfile writes the metrics in the text format for the node
// exporter's textfile collector, atomically (temp file and rename).
func (m *Metrics) WriteTextfile(path string) error {
	return prometheus.WriteToTextfile(path, m.Registry)
}
