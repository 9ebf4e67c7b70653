package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/edgepoll/edgepoll/poll"
)

// Health is the daemon's liveness and readiness.
type Health struct {
	mu       sync.Mutex
	stopping bool
	ready    bool
	polling  bool
	reason   string
	// inProgress: Polled updated the reason for the cycle in progress.
	inProgress bool
}

// noPollYet is /ready's reason before the first cycle polled.
const noPollYet = "no poll yet"

// NewHealth starts not ready ("no poll yet").
func NewHealth() *Health { return &Health{reason: noPollYet} }

// SetReady records whether the last cycle succeeded (poll and delivery),
// whether its poll worked, and if it failed, why.
func (h *Health) SetReady(ready, polling bool, reason string) {
	h.mu.Lock()
	h.ready, h.polling, h.reason, h.inProgress = ready, polling, reason, false
	h.mu.Unlock()
}

// Polled records a good poll of the cycle in progress: while its items are
// delivered (a slow target may take minutes) /ready tells the truth about
// it: the poll worked (polling true), the delivery is in progress, and not
// "no poll yet". A ready daemon stays ready until the cycle ends.
func (h *Health) Polled() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ready || h.inProgress {
		return
	}
	reason := "delivering: the poll worked, the cycle in progress is delivering to the target"
	if h.reason != noPollYet {
		reason += " (the last cycle failed: " + h.reason + ")"
	}
	h.polling, h.reason, h.inProgress = true, reason, true
}

// Observe returns obs that also tells h about each good poll (Polled): the
// cycle's Observer for a daemon with health endpoints.
func (h *Health) Observe(obs poll.Observer) poll.Observer { return healthObserver{obs, h} }

type healthObserver struct {
	poll.Observer
	h *Health
}

func (o healthObserver) Polled(result string, items int, d time.Duration) {
	o.Observer.Polled(result, items, d)
	if result == "ok" {
		o.h.Polled()
	}
}

// Ready reports whether the last cycle succeeded and no stop began.
func (h *Health) Ready() bool { h.mu.Lock(); defer h.mu.Unlock(); return h.ready && !h.stopping }

// Stopping marks the start of shutdown: /health answers 503 from now on.
func (h *Health) Stopping() { h.mu.Lock(); h.stopping = true; h.mu.Unlock() }

// readyBody is /ready's answer when not ready.
type readyBody struct {
	Component string `json:"component"`
	Polling   bool   `json:"polling"`
	Error     string `json:"error"`
}

func (h *Health) isStopping() bool { h.mu.Lock(); defer h.mu.Unlock(); return h.stopping }

// liveness is /health: 204 while running, 503 once stopping.
func liveness(stopping func() bool) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if stopping() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// Handler serves /health, /ready and, with m, /metrics.
func (h *Health) Handler(m *Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", liveness(h.isStopping))
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		h.mu.Lock()
		ready, polling, reason, stopping := h.ready, h.polling, h.reason, h.stopping
		h.mu.Unlock()
		if stopping {
			ready, reason = false, "shutting down"
		}
		if ready {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(readyBody{Component: "edge_connector", Polling: polling, Error: reason})
	})
	if m != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	}
	return mux
}

// Serve listens on addr:port and serves h until ctx is done, then shuts
// down within a few seconds (the daemon ends ctx after its graceful stop,
// so the endpoints answer throughout it). It returns once listening (or failed to).
func Serve(ctx context.Context, addr string, port int, handler http.Handler, log *slog.Logger) (done <-chan struct{}, err error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("health server failed", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("serving /health, /ready and /metrics", "addr", ln.Addr().String())
	return ch, nil
}
