// Package mqtt is the MQTT v5 sink: each event is published to the topic,
// the payload bytes unchanged, the metadata as user properties.
//
// QoS 1 and 2 count an item as delivered only when its own acknowledgement
// (PUBACK / PUBCOMP, matched by packet id in the session) arrived with a
// success reason code; QoS 0 once its bytes were written to the connection
// (confirmed at the end of each batch). Packets are coalesced into large
// writes (see coalescingConn).
// Publishing is pipelined: one goroutine writes PUBLISH packets in item
// order (so the broker sees them in order) without waiting for each ack; the
// session blocks it when the broker's Receive Maximum of unacknowledged
// packets is in flight. Results are reported per item, and the cycle moves
// the cursor over the longest acknowledged prefix.
//
// A lost connection fails the items in flight (retryable) and the next Send
// connects again with a fresh, clean session.
package mqtt

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/sinks/internal/netcause"
	"github.com/edgepoll/edgepoll/sinks/internal/tlsconf"
)

// Config configures the MQTT sink.
type Config struct {
	// Host of the broker. Required.
	Host string
	// Port of the broker. Default 1883.
	Port int
	// Topic to publish to (no wildcards). Required.
	Topic string
	// QoS 0, 1 or 2. Default 0: delivered once written to the connection,
	// no broker confirmation. 1 or 2 confirm every item (recommended).
	QoS int
	// Username and Password (a secret: never logged, never in errors).
	Username, Password string
	// TLS enables TLS; CAFile (PEM, implies TLS) replaces the system roots;
	// CertFile and KeyFile (PEM) add a client certificate.
	TLS                       bool
	CAFile, CertFile, KeyFile string
	// ConnectTimeout bounds dialing, the TLS handshake and CONNACK.
	// Default 10s.
	ConnectTimeout time.Duration
	// ClientID; default "edgepoll-" and random hex, unique per connection,
	// never derived from a key.
	ClientID string
	// AckTimeout bounds waiting for a slot under the broker's Receive
	// Maximum, and waiting for the acknowledgements after the last publish
	// of a batch. Default 30s.
	AckTimeout time.Duration
}

// Sink publishes events to an MQTT broker. It implements poll.Sink.
type Sink struct {
	cfg  Config
	tls  *tls.Config
	log  *slog.Logger
	mu   sync.Mutex
	conn *connection
}

type connection struct {
	conn *coalescingConn
	cl   *paho.Client
	sess *pubSession
}

// New validates cfg (check, the same rules as Options.Validate) and connects (bounded by ConnectTimeout). A refused
// connection (bad credentials, not authorized, TLS failure) fails at once
// with the broker's reason.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Sink, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Port == 0 {
		cfg.Port = 1883
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 30 * time.Second
	}
	s := &Sink{cfg: cfg, log: log}
	if cfg.TLS || cfg.CAFile != "" || cfg.CertFile != "" {
		tc, err := tlsconf.Load("mqtt", cfg.CAFile, cfg.CertFile, cfg.KeyFile, cfg.Host)
		if err != nil {
			return nil, err
		}
		s.tls = tc
	}
	if _, err := s.connection(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Sink) connection(ctx context.Context) (*connection, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		select {
		case <-s.conn.cl.Done():
			s.conn.sess.Close()
			s.conn = nil
		default:
			return s.conn, nil
		}
	}
	c, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	s.conn = c
	return c, nil
}

func (s *Sink) connect(ctx context.Context) (*connection, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	defer cancel()
	addr := net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port))
	var (
		conn, raw net.Conn
		err       error
	)
	d := &net.Dialer{KeepAlive: 30 * time.Second}
	if s.tls != nil {
		conn, err = (&tls.Dialer{NetDialer: d, Config: s.tls}).DialContext(ctx, "tcp", addr)
		if err == nil {
			raw = conn.(*tls.Conn).NetConn()
		}
	} else {
		conn, err = d.DialContext(ctx, "tcp", addr)
		raw = conn
	}
	if err != nil {
		return nil, connectError(addr, err)
	}
	sess := newPubSession()
	cc := newCoalescingConn(conn, raw)
	cl := paho.NewClient(paho.ClientConfig{
		Conn:          cc,
		Session:       sess,
		PacketTimeout: s.cfg.AckTimeout,
		OnClientError: func(err error) { s.log.Debug("mqtt connection error", "err", err) },
		OnServerDisconnect: func(d *paho.Disconnect) {
			s.log.Warn("mqtt broker disconnected", "reason_code", d.ReasonCode)
		},
	})
	clientID := s.cfg.ClientID
	if clientID == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		clientID = "edgepoll-" + hex.EncodeToString(b[:])
	}
	cp := &paho.Connect{ClientID: clientID, CleanStart: true, KeepAlive: 30}
	if s.cfg.Username != "" {
		cp.Username, cp.UsernameFlag = s.cfg.Username, true
	}
	if s.cfg.Password != "" {
		cp.Password, cp.PasswordFlag = []byte(s.cfg.Password), true
	}
	ca, err := cl.Connect(ctx, cp)
	if err != nil {
		cc.Close()
		if ca != nil && ca.ReasonCode >= 0x80 {
			return nil, poll.Retryable("connect_refused", fmt.Errorf("mqtt connect refused: %s (0x%02x)", connackReason(ca.ReasonCode), ca.ReasonCode))
		}
		return nil, connectError(addr, err)
	}
	s.log.Debug("mqtt connected", "broker", addr, "client_id", clientID, "receive_maximum", sess.window())
	return &connection{conn: cc, cl: cl, sess: sess}, nil
}

// Send publishes evs in order, pipelined, and reports each item.
func (s *Sink) Send(ctx context.Context, evs []poll.Event, report func(int, error) bool) {
	c, err := s.connection(ctx)
	if err != nil {
		report(0, err)
		return
	}
	b := &batch{reported: make([]bool, len(evs)), report: report}
	started := s.publishAll(ctx, c, evs, b)
	if s.cfg.QoS == 0 {
		err := c.conn.Flush(s.cfg.AckTimeout)
		if err != nil {
			err = poll.Retryable("write", fmt.Errorf("mqtt: writing to the broker: %v", err))
			s.drop(c)
		}
		for i := 0; i < started; i++ {
			b.finish(i, err)
		}
		return
	}
	s.awaitAcks(ctx, c, &b.acks, func(reason string, err error) {
		for i := 0; i < started; i++ {
			b.finish(i, poll.Retryable(reason, err))
		}
	})
}

// batch is one Send's items in flight: which are reported, and the acks
// outstanding.
type batch struct {
	mu       sync.Mutex
	reported []bool
	report   func(int, error) bool
	stop     atomic.Bool    // report asked to stop
	acks     sync.WaitGroup // QoS 1/2 publishes not acknowledged yet
}

// finish reports item i once. The lock is held across report: an ack
// callback that won the race for item i finishes its report before a
// concurrent fail() can pass i, so no report outlives Send (a late one
// would move the persisted cursor after the cycle has ended).
func (b *batch) finish(i int, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.reported[i] {
		return
	}
	b.reported[i] = true
	if !b.report(i, err) {
		b.stop.Store(true)
	}
}

// publishAll publishes evs in order until one cannot be (reported, unless
// its ack callback reports it) or the batch stops, and returns how many it
// started: those the caller reports with the flush or the acks.
func (s *Sink) publishAll(ctx context.Context, c *connection, evs []poll.Event, b *batch) (started int) {
	for i, ev := range evs {
		if ctx.Err() != nil || b.stop.Load() {
			return started
		}
		if isDone(c.cl) {
			// The connection ended after connection() returned it (the
			// broker went away just now): item i is not sent, and it is
			// reported, so that a Send never returns with nothing said.
			b.finish(i, notQueued(ctx, errNotConnected))
			return started
		}
		p := &paho.Publish{Topic: s.cfg.Topic, QoS: byte(s.cfg.QoS), Payload: ev.Payload, Properties: properties(ev)}
		started = i + 1
		pb := p.Packet()
		if err := c.sess.fits(pb); err != nil { // never fits: refused, the next item goes on
			b.finish(i, poll.Permanent("mqtt_packet_too_large", err))
			continue
		}
		if s.cfg.QoS == 0 {
			if _, err := c.cl.Publish(ctx, p); err != nil {
				b.finish(i, poll.Retryable("write", fmt.Errorf("mqtt publish: %v", err)))
				return started
			}
			continue // reported once the flush confirmed the write
		}
		b.acks.Add(1)
		queued, err := c.sess.publish(ctx, pb, func(r packets.ControlPacket) {
			defer b.acks.Done()
			b.finish(i, ackResult(r))
		})
		if !queued { // its callback will never run
			b.acks.Done()
			b.finish(i, notQueued(ctx, err))
			return started
		}
		if err != nil {
			return started // a write error: the callback reports the item as lost
		}
	}
	return started
}

// notQueued is the failure of a publish the session did not take.
func notQueued(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return poll.Retryable("canceled", ctx.Err())
	case errors.Is(err, errNotConnected):
		return poll.Retryable("connection_lost", errors.New("mqtt connection lost while publishing"))
	default:
		return poll.Retryable("publish", fmt.Errorf("mqtt publish: %v", err))
	}
}

// awaitAcks waits until every publish of a batch completed (wg), failing
// what is outstanding when the connection is lost, ctx is done or the
// broker does not acknowledge within AckTimeout.
func (s *Sink) awaitAcks(ctx context.Context, c *connection, wg *sync.WaitGroup, fail func(reason string, err error)) {
	acked := make(chan struct{})
	go func() { wg.Wait(); close(acked) }()
	ackTimer := time.NewTimer(s.cfg.AckTimeout)
	defer ackTimer.Stop()
	select {
	case <-acked:
	case <-c.cl.Done():
		fail("connection_lost", errors.New("mqtt connection lost before the broker acknowledged"))
	case <-ctx.Done():
		fail("canceled", ctx.Err())
	case <-ackTimer.C:
		// A broker that keeps the connection but never acknowledges: fail
		// what is outstanding and drop the connection, so the next Send
		// starts over on a fresh session.
		fail("ack_timeout", fmt.Errorf("mqtt broker did not acknowledge within %s", s.cfg.AckTimeout))
		s.drop(c)
	}
}

// connectError is a failed connection, its reason naming the cause
// (connection_refused, dns, tls, connect_timeout) where it is known.
func connectError(addr string, err error) error {
	reason := netcause.Reason(err)
	if reason == "" {
		reason = "connect"
	}
	return poll.Retryable(reason, fmt.Errorf("mqtt: connecting to %s: %v", addr, err))
}

func isDone(cl *paho.Client) bool {
	select {
	case <-cl.Done():
		return true
	default:
		return false
	}
}

func properties(ev poll.Event) *paho.PublishProperties {
	props := &paho.PublishProperties{ContentType: "application/json"}
	add := func(k, v string) {
		if v != "" {
			props.User = append(props.User, paho.UserProperty{Key: k, Value: v})
		}
	}
	add("X-ilert-Event-Type", ev.EventType)
	add("X-ilert-Alert-Id", ev.AlertID)
	add("X-ilert-Edge-Item-Id", ev.ItemID())
	add("X-ilert-Timestamp", ev.Timestamp)
	return props
}

// ackResult classifies the packet that completed a QoS 1/2 publish.
func ackResult(r packets.ControlPacket) error {
	var code byte
	switch p := r.Content.(type) {
	case *packets.Puback:
		code = p.ReasonCode
	case *packets.Pubcomp:
		code = p.ReasonCode
	case *packets.Pubrec:
		code = p.ReasonCode
		if code < 0x80 {
			return poll.Retryable("pubrec", errors.New("mqtt: PUBREC without PUBCOMP"))
		}
	default:
		return poll.Retryable("connection_lost", errors.New("mqtt: publish dropped from the session before it was acknowledged"))
	}
	if code < 0x80 {
		return nil
	}
	reason := fmt.Sprintf("mqtt_0x%02x", code)
	err := fmt.Errorf("mqtt broker refused the publish: %s (0x%02x)", pubReason(code), code)
	switch code {
	case 0x95, 0x99: // packet too large, payload format invalid: never succeeds
		return poll.Permanent(reason, err)
	}
	return poll.Retryable(reason, err)
}

func pubReason(code byte) string {
	switch code {
	case 0x80:
		return "unspecified error"
	case 0x83:
		return "implementation specific error"
	case 0x87:
		return "not authorized"
	case 0x90:
		return "topic name invalid"
	case 0x91:
		return "packet identifier in use"
	case 0x97:
		return "quota exceeded"
	case 0x95:
		return "packet too large"
	case 0x99:
		return "payload format invalid"
	}
	return "error"
}

func connackReason(code byte) string {
	switch code {
	case 0x80:
		return "unspecified error"
	case 0x84:
		return "unsupported protocol version"
	case 0x85:
		return "client identifier not valid"
	case 0x86:
		return "bad user name or password"
	case 0x87:
		return "not authorized"
	case 0x88:
		return "server unavailable"
	case 0x89:
		return "server busy"
	case 0x8A:
		return "banned"
	case 0x8C:
		return "bad authentication method"
	}
	return "refused"
}

// drop closes c if it is still the sink's connection.
func (s *Sink) drop(c *connection) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == c {
		_ = c.cl.Disconnect(&paho.Disconnect{ReasonCode: 0})
		c.sess.Close()
		s.conn = nil
	}
}

// Close disconnects.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	err := s.conn.cl.Disconnect(&paho.Disconnect{ReasonCode: 0})
	s.conn.sess.Close()
	s.conn = nil
	return err
}
