// Package kafka is the Kafka sink: each event becomes one record on the
// topic, key = the alert id (the edge item id when the payload has none),
// value = the payload bytes unchanged, headers = the metadata.
//
// Records of a batch are produced pipelined (all handed to the client at
// once, results reported per record as they are acknowledged); the cycle
// moves the cursor over the longest acknowledged prefix. The producer is
// idempotent with acks=all (franz-go's defaults), so retries inside the
// client never duplicate or reorder records of a partition, and the default
// partitioner sends every record of one key to one partition: events of one
// alert stay in order.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/sinks/internal/netcause"
	"github.com/edgepoll/edgepoll/sinks/internal/tlsconf"
)

// Config configures the Kafka sink.
type Config struct {
	// Brokers are the seed brokers, host:port. Required.
	Brokers []string
	// Topic to produce to. Required.
	Topic string
	// DeliveryTimeout bounds how long a record may wait for its
	// acknowledgement, retries included, before it fails (retryable): an
	// unreachable cluster fails the cycle in this time instead of hanging.
	// Default 30s. Shorter fails faster on an outage; longer rides out a
	// leader election.
	DeliveryTimeout time.Duration
	// TLS enables TLS; CAFile (PEM) replaces the system roots; CertFile and
	// KeyFile (PEM) add a client certificate.
	TLS                       bool
	CAFile, CertFile, KeyFile string
	// SASLMechanism: "", "plain", "scram-sha-256" or "scram-sha-512", with
	// Username and Password (a secret: never logged, never in errors).
	SASLMechanism      string
	Username, Password string
	// ClientID sent to the brokers. Default "edgepoll".
	ClientID string
}

// Sink produces events to Kafka. It implements poll.Sink.
type Sink struct {
	cfg   Config
	cl    *kgo.Client
	log   *slog.Logger
	conns *connErrors
	// reached: a probe found a broker that speaks Kafka, and no record
	// failed retryably since. Until then every Send probes first.
	reached atomic.Bool
}

// probeTimeout bounds the probe before a batch: brokers that refuse the
// connection or do not speak Kafka fail the batch within it, instead of
// after the record delivery timeout.
const probeTimeout = 9 * time.Second

// answerTimeout is how long a broker that accepted the connection may take
// to answer a request on it (franz-go's RequestTimeoutOverhead: connection
// set-up, metadata; a produce request gets the delivery timeout on top).
// A Kafka broker answers ApiVersions in milliseconds.
const answerTimeout = 4 * time.Second

// New validates cfg (check, the same rules as Options.Validate) and creates
// the client (which connects lazily).
func New(cfg Config, log *slog.Logger) (*Sink, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.DeliveryTimeout <= 0 {
		cfg.DeliveryTimeout = 30 * time.Second
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "edgepoll"
	}
	conns := &connErrors{}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.ClientID(cfg.ClientID),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout),
		kgo.ProduceRequestTimeout(cfg.DeliveryTimeout),
		kgo.ManualFlushing(), // Send flushes each batch at once: one produce request, not a first record alone then the rest
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.DialTimeout(min(probeTimeout/2, cfg.DeliveryTimeout)),
		kgo.RequestTimeoutOverhead(max(100*time.Millisecond, min(answerTimeout, cfg.DeliveryTimeout/2))),
		kgo.WithHooks(conns),
	}
	if cfg.TLS || cfg.CAFile != "" || cfg.CertFile != "" {
		tc, err := tlsconf.Load("kafka", cfg.CAFile, cfg.CertFile, cfg.KeyFile, "")
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if cfg.SASLMechanism != "" {
		m, err := mechanism(cfg)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, &poll.ConfigError{Field: "kafka-brokers", Msg: err.Error()}
	}
	return &Sink{cfg: cfg, cl: cl, log: log, conns: conns}, nil
}

func mechanism(cfg Config) (sasl.Mechanism, error) {
	switch strings.ToLower(cfg.SASLMechanism) {
	case "plain":
		return plain.Auth{User: cfg.Username, Pass: cfg.Password}.AsMechanism(), nil
	case "scram-sha-256":
		return scram.Auth{User: cfg.Username, Pass: cfg.Password}.AsSha256Mechanism(), nil
	case "scram-sha-512":
		return scram.Auth{User: cfg.Username, Pass: cfg.Password}.AsSha512Mechanism(), nil
	}
	return nil, &poll.ConfigError{Field: "kafka-sasl-mechanism", Msg: "must be plain, scram-sha-256 or scram-sha-512"}
}

// Record builds the record of an event.
func Record(ev poll.Event) *kgo.Record {
	k := ev.AlertID
	if k == "" {
		k = ev.ItemID()
	}
	r := &kgo.Record{Key: []byte(k), Value: ev.Payload}
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: "X-ilert-Edge-Item-Id", Value: []byte(ev.ItemID())})
	if ev.EventType != "" {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: "X-ilert-Event-Type", Value: []byte(ev.EventType)})
	}
	if ev.AlertID != "" {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: "X-ilert-Alert-Id", Value: []byte(ev.AlertID)})
	}
	if ev.Timestamp != "" {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: "X-ilert-Timestamp", Value: []byte(ev.Timestamp)})
	}
	return r
}

// Send produces evs pipelined and reports each record's result.
//
// A broker refuses a whole produce batch as too large when one record in it
// is: the records of such a batch are produced again one at a time, so
// only a record too large on its own is refused (and skipped), never its
// neighbours.
//
// When ctx is done Send returns without waiting for the records in flight
// (an idempotent producer fails a record it sent only once the broker
// answered, which a hung broker never does): those stay unreported, so
// not delivered, and their late results are dropped.
func (s *Sink) Send(ctx context.Context, evs []poll.Event, report func(int, error) bool) {
	if err := s.probe(ctx); err != nil {
		for i := range evs { // none started; each failed alike, as a produce would have
			report(i, err)
		}
		return
	}
	g := &guardedReport{report: report}
	defer g.close()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		tooBig []int // refused as too large within a batch: tried alone below
	)
	for i, ev := range evs {
		if ctx.Err() != nil || g.stopped.Load() {
			break
		}
		wg.Add(1)
		s.cl.Produce(ctx, Record(ev), func(_ *kgo.Record, err error) {
			defer wg.Done()
			if errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge) {
				mu.Lock()
				tooBig = append(tooBig, i)
				mu.Unlock()
				return
			}
			if err = s.classify(err); err != nil && !poll.IsPermanent(err) {
				s.reached.Store(false)
			}
			g.call(i, err)
		})
	}
	_ = s.cl.Flush(ctx) // every record's promise reports its outcome
	if !waitOrDone(ctx, wg.Wait) {
		return
	}
	sort.Ints(tooBig)
	for _, i := range tooBig {
		if ctx.Err() != nil || g.stopped.Load() {
			return // not reported: not delivered, sent again next cycle
		}
		done := make(chan error, 1)
		s.cl.Produce(ctx, Record(evs[i]), func(_ *kgo.Record, err error) { done <- err })
		_ = s.cl.Flush(ctx)
		select {
		case err := <-done:
			g.call(i, s.classify(err))
		case <-ctx.Done():
			return
		}
	}
}

// guardedReport passes a batch's reports on until Send returns (close),
// and remembers whether one asked for no new delivery.
type guardedReport struct {
	mu      sync.Mutex
	closed  bool
	report  func(int, error) bool
	stopped atomic.Bool
}

func (g *guardedReport) call(i int, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed && !g.report(i, err) {
		g.stopped.Store(true)
	}
}

func (g *guardedReport) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// waitOrDone runs wait and reports whether it returned before ctx was done.
func waitOrDone(ctx context.Context, wait func()) bool {
	done := make(chan struct{})
	go func() {
		wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		select {
		case <-done: // finished as well: the outcomes are all in
			return true
		default:
			return false
		}
	}
}

// probe makes sure, before a batch, that a broker answers in Kafka, unless
// one did and nothing failed since: a metadata request (franz-go's Ping,
// one attempt per broker, no retries) bounded by probeTimeout. Its failure
// is retryable and names the cause (connection_refused, not_kafka, tls,
// sasl_auth_failed, ...), so a wrong broker address fails the cycle in
// seconds rather than after the record delivery timeout.
func (s *Sink) probe(ctx context.Context) error {
	if s.reached.Load() {
		return nil
	}
	limit := min(probeTimeout, s.cfg.DeliveryTimeout)
	pctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	err := s.cl.Ping(pctx)
	if err == nil {
		s.reached.Store(true)
		return nil
	}
	if ctx.Err() != nil {
		return poll.Retryable("canceled", ctx.Err())
	}
	cause := err
	if c := s.conns.get(); c != nil && (pctx.Err() != nil || errors.Is(c, errSASL) || errors.Is(c, errNoAnswer)) {
		cause = c // what the last broker connection failed on
	}
	if pctx.Err() != nil && cause == err {
		return poll.Retryable("timeout", fmt.Errorf("kafka: no broker answered within %s", limit))
	}
	return poll.Retryable(causeReason(cause), fmt.Errorf("kafka: no broker reachable: %w", cause))
}

// classify maps a produce result to nil or a classed delivery error.
// Permanent only where a retry can never succeed for this record (it is
// too large or invalid); authorization and topic errors stay retryable: a
// fix of the configuration must not have skipped items.
//
// A record that timed out names the underlying cause, as the reason and in
// the message: franz-go's last retry error when it kept one (refused dial,
// unresolvable host, a port that does not speak Kafka, an unknown topic),
// else the last failed broker connection (TLS); a failed SASL
// authentication (which franz-go may only know as an EOF) takes precedence.
func (s *Sink) classify(err error) error {
	if err == nil {
		return nil
	}
	var ke *kerr.Error
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return poll.Retryable("canceled", err)
	case errors.Is(err, kgo.ErrRecordTimeout):
		cause := lastRetryErr(err)
		if c := s.conns.get(); cause == nil || errors.Is(c, errSASL) {
			cause = c // the SASL failure behind franz-go's plain EOF
		}
		msg := fmt.Sprintf("kafka: record not acknowledged within %s", s.cfg.DeliveryTimeout)
		if cause == nil {
			return poll.Retryable("timeout", errors.New(msg+" (no error from the brokers)"))
		}
		return poll.Retryable(causeReason(cause), fmt.Errorf("%s: %w", msg, cause))
	case errors.Is(err, kgo.ErrRecordRetries):
		return poll.Retryable("retries", err)
	case errors.As(err, &ke):
		switch ke {
		case kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidRecord, kerr.CorruptMessage:
			return poll.Permanent(kafkaReason(ke), err)
		}
		return poll.Retryable(kafkaReason(ke), err)
	}
	return poll.Retryable("produce", err)
}

func kafkaReason(ke *kerr.Error) string { return "kafka_" + strings.ToLower(ke.Message) }

// lastRetryErr is the cause franz-go joins to ErrRecordTimeout ("..., last
// err: %w"), or nil.
func lastRetryErr(err error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, w := range j.Unwrap() {
				if !errors.Is(w, kgo.ErrRecordTimeout) {
					return w
				}
			}
			return nil
		}
	}
	return nil
}

// causeReason is the bounded reason of a broker or connection error.
func causeReason(err error) string {
	var ke *kerr.Error
	switch {
	case errors.Is(err, errSASL):
		return "sasl_auth_failed"
	case errors.Is(err, errNoAnswer):
		return "not_kafka"
	case netcause.Reason(err) != "":
		return netcause.Reason(err)
	case errors.As(err, &ke):
		return kafkaReason(ke)
	case strings.Contains(err.Error(), "invalid large response size"):
		return "not_kafka" // franz-go's guess (HTTP, TLS) is in the message
	}
	return "broker_connection"
}

// connErrors is a franz-go hook keeping the last failed broker connection
// (dial, TLS handshake, SASL authentication); a successful one clears it.
// A broker may answer a failed SASL authentication by closing the
// connection (a plain EOF): a failed read of a SASL response marks the next
// connection failure as an authentication failure.
type connErrors struct {
	mu         sync.Mutex
	last       error
	saslFailed bool
}

var (
	_ kgo.HookBrokerConnect = (*connErrors)(nil)
	_ kgo.HookBrokerRead    = (*connErrors)(nil)
)

var (
	// errSASL marks a failed SASL authentication.
	errSASL = errors.New("SASL authentication failed (wrong user name, password or mechanism?)")
	// errNoAnswer marks a port that accepted the connection but did not
	// answer Kafka's first request (ApiVersions) in time: an HTTP server or
	// another service, or a hung broker.
	errNoAnswer = errors.New("the port accepted the connection but gave no Kafka answer (not a Kafka listener? an HTTP server waits silently)")
)

func (c *connErrors) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, conn net.Conn, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var (
		ke   *kerr.Error
		nerr net.Error
	)
	switch {
	case err != nil && (c.saslFailed || errors.As(err, &ke) && (ke == kerr.SaslAuthenticationFailed || ke == kerr.UnsupportedSaslMechanism || ke == kerr.IllegalSaslState)):
		err = fmt.Errorf("%w: %w", errSASL, err)
	case err != nil && conn != nil && errors.As(err, &nerr) && nerr.Timeout():
		err = fmt.Errorf("%w: %w", errNoAnswer, err) // dialled, then silence
	}
	c.last, c.saslFailed = err, false
}

func (c *connErrors) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err != nil && (key == kmsg.SASLHandshake.Int16() || key == kmsg.SASLAuthenticate.Int16()) {
		c.mu.Lock()
		c.saslFailed = true
		c.mu.Unlock()
	}
}

func (c *connErrors) get() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// Close flushes and closes the client.
func (s *Sink) Close() error {
	s.cl.Close()
	return nil
}
