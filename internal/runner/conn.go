package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/edgepoll/edgepoll/metrics"
	"github.com/edgepoll/edgepoll/poll"
)

// Conn is one connection as the runner needs it: its settings, and how to
// get what cmd builds from its flags (its key, store, dead letter, target).
type Conn struct {
	// Name is a --config connection's name (logs, metrics, results).
	Name string
	// Mode is its target (--mode), for logs and metrics.
	Mode   string
	APIURL string
	// State and DeadLetter are --state and --dead-letter as given:
	// connections naming the same ones share one open store and one open
	// dead letter.
	State, DeadLetter     string
	SkipLimit             int
	ClusterID, InstanceID string
	Heartbeat             string // the heartbeat key (-b), a secret
	PollInterval          time.Duration
	StandbyInterval       time.Duration

	// Key reads the connector key.
	Key func(ctx context.Context) (string, error)
	// StateKeys is the connection's state key for its connector key and,
	// when it shares the key with others of this process (fan-out), what
	// it shares (nil otherwise).
	StateKeys func(key string) (conn string, fan *poll.FanOut)
	// OpenStore opens --state; OpenDeadLetter opens --dead-letter (nil,
	// nil: none).
	OpenStore      func(ctx context.Context, log *slog.Logger) (poll.Store, error)
	OpenDeadLetter func(ctx context.Context) (poll.DeadLetter, error)
	// NewSink builds the target (--mode, wrapped in --filter/--transform).
	NewSink func(ctx context.Context, log *slog.Logger, stdout io.Writer) (poll.Sink, error)
	// Seed, if set, runs once the store is open, before any cycle: the
	// reference agent's cursor while the connection has none (never set
	// inside Lambda). Its error fails the connection's set-up.
	Seed func(ctx context.Context, log *slog.Logger, store poll.Store, key string) error
}

// app is one set-up connection: client, sink and cycle (the store and the
// dead letter belong to the runner: one of each per --state and
// --dead-letter for all connections).
type app struct {
	conn   *Conn
	log    *slog.Logger
	client *poll.Client
	cycle  *poll.Cycle
	store  poll.Store
	sink   poll.Sink
}

// newApp builds the client (on the shared transport rt) and the cycle of
// connection c on store and dead (nil: none); the sink comes with
// openSink.
func newApp(c *Conn, key string, log *slog.Logger, store poll.Store, dead poll.DeadLetter, rt http.RoundTripper) (*app, error) {
	client, err := poll.NewClient(poll.ClientConfig{BaseURL: c.APIURL, Key: key, Transport: rt})
	if err != nil { // the URL and the key were validated already
		return nil, fmt.Errorf("--api-url: %w", err)
	}
	a := &app{conn: c, log: log, client: client, store: store}
	conn, fan := c.StateKeys(key)
	a.cycle = &poll.Cycle{Client: client, Store: store, Conn: conn, FanOut: fan, SkipLimit: c.SkipLimit, StateName: c.State}
	if dead != nil {
		a.cycle.DeadLetter = dead
	}
	if c.ClusterID != "" {
		inst := c.InstanceID
		if inst == "" {
			inst = "edgepoll-" + randomHex()
		}
		a.cycle.HA = &poll.HA{ClusterID: c.ClusterID, InstanceID: inst}
	}
	return a, nil
}

// openSink builds the target (once; later calls do nothing). With
// deferOutage (a daemon, a Lambda function) a target that is down is a
// deferred sink, retried at delivery; isConfig tells a configuration
// error, which never is.
func (a *app) openSink(ctx context.Context, stdout io.Writer, deferOutage bool, isConfig func(error) bool) error {
	if a.sink != nil {
		return nil
	}
	c, log := a.conn, a.log
	sink, err := c.NewSink(ctx, log, stdout)
	if err != nil && !isConfig(err) && deferOutage {
		// The target is down (its constructor connects): for a daemon or
		// a Lambda function an outage like any other, not a reason to stay
		// down. A one-shot run fails fast (exit 1).
		a.log.Warn("the target is not reachable yet; delivery will retry it", "err", err)
		sink, err = poll.Deferred(func(ctx context.Context) (poll.Sink, error) { return c.NewSink(ctx, log, stdout) }), nil
	}
	if err != nil {
		return err
	}
	a.sink, a.cycle.Sink = sink, sink
	return nil
}

func (a *app) close() {
	if a.sink != nil {
		if err := a.sink.Close(); err != nil {
			a.log.Warn("closing the sink", "err", err)
		}
	}
}

// warnRandomInstance: a one-shot HA run without --instance-id is a new
// instance each time.
func (a *app) warnRandomInstance() {
	if a.cycle.HA != nil && a.conn.InstanceID == "" {
		a.log.Warn("--cluster-id without --instance-id: this run is a new HA instance with a random id; give every scheduled run the same --instance-id so the server keeps its role across runs",
			"instance", a.cycle.HA.InstanceID)
	}
}

// finishOnce logs a one-shot cycle's outcome, pings the heartbeat after a
// successful one, and maps the outcome to an exit code.
func (a *app) finishOnce(sum poll.Summary, err error, took time.Duration, m *metrics.Metrics) int {
	if m != nil {
		// The failure streak and last success come from the state store:
		// the truth across runs, not just this one.
		m.Cycle(poll.CycleReport{Summary: sum, Err: err, Ready: err == nil, Failures: sum.Stats.Failures})
	}
	attrs := []any{"polls", sum.Polls, "polled", sum.Polled, "delivered", sum.Delivered, "skipped", sum.Skipped,
		"cursor", sum.Cursor, "duration", took.Round(time.Millisecond)}
	if sum.Role != "" {
		attrs = append(attrs, "role", sum.Role)
	}
	if ra := poll.RetryAfterOf(err); ra > 0 {
		attrs = append(attrs, "retry_after", ra) // the target's 429/503 Retry-After
	}
	if err != nil {
		a.log.Error("cycle failed", append(attrs, "err", err)...)
		return ExitFailed
	}
	if sum.LeaseHeld {
		return ExitOK
	}
	if sum.Stopped {
		a.log.Info("cycle stopped early on request; cursor persisted", attrs...)
	} else {
		a.log.Info("cycle done", attrs...)
	}
	if !sum.Stopped {
		a.heartbeat(context.Background(), 10*time.Second, a.log, m)
	}
	return ExitOK
}

// heartbeat pings the connection's heartbeat (-b), if it has one, within
// timeout, and reports a failure to log and the outcome to m (if any).
func (a *app) heartbeat(ctx context.Context, timeout time.Duration, log *slog.Logger, m *metrics.Metrics) {
	if a.conn.Heartbeat == "" {
		return
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := a.client.Heartbeat(hctx, a.conn.Heartbeat)
	if m != nil {
		m.Heartbeat(err)
	}
	if err != nil {
		log.Warn("heartbeat ping failed", "err", err)
	}
}

// RunID names one run of edgepoll in leases: "run-" and 16 hex digits.
func RunID() string { return "run-" + randomHex() }

func randomHex() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
