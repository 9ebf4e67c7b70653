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
)

// Health is the daemon's liveness and readiness.
type Health struct {
	mu       sync.Mutex
	stopping bool
	ready    bool
	reason   string
}

// NewHealth starts not ready ("no poll yet").
func NewHealth() *Health { return &Health{reason: "no poll yet"} }

// SetReady records whether polling works and, if not, why.
func (h *Health) SetReady(ready bool, reason string) {
	h.mu.Lock()
	h.ready, h.reason = ready, reason
	h.mu.Unlock()
}

// Ready reports whether polling works.
func (h *Health) Ready() bool { h.mu.Lock(); defer h.mu.Unlock(); return h.ready && !h.stopping }

// Stopping marks the start of shutdown: /health answers 503 from now on.
func (h *Health) Stopping() { h.mu.Lock(); h.stopping = true; h.mu.Unlock() }

// Handler serves /health, /ready and, with m, /metrics.
func (h *Health) Handler(m *Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		h.mu.Lock()
		stopping := h.stopping
		h.mu.Unlock()
		if stopping {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		h.mu.Lock()
		ready, reason, stopping := h.ready, h.reason, h.stopping
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
		_ = json.NewEncoder(w).Encode(map[string]any{"component": "edge_connector", "polling": false, "error": reason})
	})
	if m != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	}
	return mux
}

// Serve listens on addr:port and serves h until ctx is done, then shuts
// down within a few seconds. It returns once listening (or failed to).
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
