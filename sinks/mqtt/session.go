package mqtt

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/eclipse/paho.golang/packets"
	paholog "github.com/eclipse/paho.golang/paho/log"
	"github.com/eclipse/paho.golang/paho/session"
)

// pubSession is paho's session state for a publisher that starts every
// connection clean and never resends: a publish lost with its connection is
// failed and published again by the next cycle (the cursor did not pass
// it). So, unlike paho's general in-memory session, it keeps no copy of
// each packet for a resend that never comes, starts no goroutine per
// publish, and fails every pending publish when the connection goes (the
// general session forgets them silently when it cleans up, leaving whoever
// waits on them waiting).
//
// Flow control: at most Receive Maximum (from CONNACK) QoS 1/2 publishes
// are unacknowledged; publish (and paho's AddToSession) blocks for a slot.
//
// The sink publishes through publish, which registers the item's callback
// under the packet identifier it allocates: the acknowledgement carrying
// that identifier runs that callback, nothing else does. Completion (the
// ack, or the loss of the connection) runs the callback on the goroutine
// that saw it (paho's reader for an ack), after the session's lock is
// released: the session never blocks while holding its lock, and no
// completion waits in a queue (a completed publish is reported as soon as
// its ack is read, which keeps what a crash can redeliver to the window in
// flight). The callbacks must therefore be quick and never block (the
// cycle's report only records the outcome).
type pubSession struct {
	mu      sync.Mutex
	conn    io.Writer     // nil while not connected
	lost    chan struct{} // closed when the connection is lost
	slots   chan struct{} // one token per unacknowledged PUBLISH
	maxQoS  byte          // from CONNACK
	maxSize int           // the broker's Maximum Packet Size, from CONNACK (0: none)
	pending map[uint16]pendingPacket
	lastID  uint16
	seq     uint64 // registration order, for failing pending packets in order
	closed  bool
}

type pendingPacket struct {
	publish bool
	seq     uint64
	resp    chan<- packets.ControlPacket // paho's own path (AddToSession)
	cb      func(packets.ControlPacket)  // the sink's path (publish)
}

// completion is a pending packet's result, handed over once s.mu is
// released.
type completion struct {
	p pendingPacket
	r packets.ControlPacket
}

func (c completion) run() {
	select {
	case c.p.resp <- c.r: // paho's channel has room for one
	default:
	}
	if c.p.cb != nil {
		c.p.cb(c.r)
	}
}

var _ session.SessionManager = (*pubSession)(nil)

// afterSlotHook, when set (tests only), runs in register between taking a
// window slot and registering the packet.
var afterSlotHook func()

// errNotConnected: publish found no connection (or lost it while waiting).
var errNotConnected = session.ErrNoConnection

func newPubSession() *pubSession {
	s := &pubSession{pending: map[uint16]pendingPacket{}, lost: make(chan struct{})}
	close(s.lost) // not connected yet
	return s
}

// ConAckReceived implements session.SessionManager.
func (s *pubSession) ConAckReceived(conn io.Writer, _ *packets.Connect, ca *packets.Connack) error {
	s.mu.Lock()
	failed := s.failAllLocked()
	rm := 65535
	s.maxQoS, s.maxSize = 2, 0
	if ca.Properties != nil {
		if ca.Properties.MaximumPacketSize != nil {
			s.maxSize = int(*ca.Properties.MaximumPacketSize)
		}
		if ca.Properties.ReceiveMaximum != nil && *ca.Properties.ReceiveMaximum > 0 {
			rm = int(*ca.Properties.ReceiveMaximum)
		}
		if ca.Properties.MaximumQOS != nil {
			s.maxQoS = *ca.Properties.MaximumQOS
		}
	}
	s.conn, s.lost, s.slots = conn, make(chan struct{}), make(chan struct{}, rm)
	s.mu.Unlock()
	runAll(failed)
	return nil
}

// errPacketTooLarge: a PUBLISH larger than the broker's Maximum Packet
// Size, which a client must not send (MQTT 5, 3.1.2.11.4); a broker that
// gets one drops the connection, which would fail the item and its
// neighbours again every cycle.
var errPacketTooLarge = errors.New("mqtt: packet too large for the broker")

// fits reports errPacketTooLarge (wrapped, with the sizes) when pb is
// larger than the broker's Maximum Packet Size.
func (s *pubSession) fits(pb *packets.Publish) error {
	s.mu.Lock()
	limit := s.maxSize
	s.mu.Unlock()
	if limit == 0 {
		return nil
	}
	n := 0
	for _, b := range pb.Buffers() { // what ControlPacket.WriteTo sends after the fixed header
		n += len(b)
	}
	size := 2 // packet type and the first byte of the remaining length
	for r := n; r >= 128; r >>= 7 {
		size++
	}
	if size += n; size > limit {
		return fmt.Errorf("%w: %d bytes, the broker's Maximum Packet Size is %d", errPacketTooLarge, size, limit)
	}
	return nil
}

// window is the Receive Maximum granted by the broker's CONNACK (0 before).
func (s *pubSession) window() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cap(s.slots)
}

// ConnectionLost implements session.SessionManager: every pending packet
// completes with an empty packet (not acknowledged).
func (s *pubSession) ConnectionLost(*packets.Disconnect) error {
	s.mu.Lock()
	failed := s.failAllLocked()
	s.mu.Unlock()
	runAll(failed)
	return nil
}

// failAllLocked marks the connection lost and takes every pending packet
// out, in the order they were registered, to be completed (as not
// acknowledged) once the caller released s.mu.
func (s *pubSession) failAllLocked() []completion {
	if s.conn != nil {
		close(s.lost)
		s.conn = nil
	}
	if len(s.pending) == 0 {
		return nil
	}
	out := make([]completion, 0, len(s.pending))
	for id, p := range s.pending {
		delete(s.pending, id)
		out = append(out, completion{p: p})
	}
	slices.SortFunc(out, func(a, b completion) int { return cmp.Compare(a.p.seq, b.p.seq) })
	return out
}

func runAll(cs []completion) {
	for _, c := range cs {
		c.run()
	}
}

// register waits for a slot (PUBLISH only), allocates a packet identifier,
// sets it on packet and records the packet as pending with resp and cb. It
// returns the connection to write to. On error nothing was registered.
func (s *pubSession) register(ctx context.Context, packet session.Packet, resp chan<- packets.ControlPacket, cb func(packets.ControlPacket)) (io.Writer, error) {
	s.mu.Lock()
	lost, slots, connected := s.lost, s.slots, s.conn != nil
	s.mu.Unlock()
	if !connected {
		return nil, errNotConnected
	}
	publish := packet.Type() == packets.PUBLISH
	if publish {
		select {
		case slots <- struct{}{}:
		case <-lost:
			return nil, errNotConnected
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if afterSlotHook != nil {
		afterSlotHook()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Lost (and perhaps reconnected) while waiting: a loss keeps the closed
	// lost channel and clears conn, so both are checked (the slot can be
	// taken in the same instant the connection goes).
	if s.lost != lost || s.conn == nil {
		return nil, errNotConnected
	}
	id := s.lastID
	for range 65535 {
		id++
		if id == 0 {
			id = 1
		}
		if _, used := s.pending[id]; !used {
			s.lastID = id
			s.seq++
			s.pending[id] = pendingPacket{publish: publish, seq: s.seq, resp: resp, cb: cb}
			packet.SetIdentifier(id)
			return s.conn, nil
		}
	}
	if publish {
		<-slots
	}
	return nil, session.ErrPacketIdentifiersExhausted
}

// AddToSession implements session.SessionManager (paho's own publish path;
// the sink uses publish).
func (s *pubSession) AddToSession(ctx context.Context, packet session.Packet, resp chan<- packets.ControlPacket) error {
	_, err := s.register(ctx, packet, resp, nil)
	return err
}

// publish sends a QoS 1/2 PUBLISH: it waits for a slot under the broker's
// Receive Maximum, registers cb under the packet identifier it allocates,
// and writes the packet. queued reports whether cb was registered: if so,
// cb runs exactly once, with the acknowledgement carrying pb's identifier
// or with an empty packet when the publish is lost (write error, lost
// connection, Close); err is then a write error, after which nothing more
// should be published on this connection. If not queued, cb never runs and
// err says why.
func (s *pubSession) publish(ctx context.Context, pb *packets.Publish, cb func(packets.ControlPacket)) (queued bool, err error) {
	s.mu.Lock()
	maxQoS, connected := s.maxQoS, s.conn != nil
	s.mu.Unlock()
	if connected && pb.QoS > maxQoS {
		return false, fmt.Errorf("the broker's maximum QoS is %d", maxQoS)
	}
	conn, err := s.register(ctx, pb, nil, cb)
	if err != nil {
		return false, err
	}
	if _, err := pb.WriteTo(conn); err != nil {
		s.end(pb.PacketID, &packets.ControlPacket{})
		return true, err
	}
	return true, nil
}

// PacketReceived implements session.SessionManager.
func (s *pubSession) PacketReceived(recv *packets.ControlPacket, pubChan chan<- *packets.Publish) error {
	switch p := recv.Content.(type) {
	case *packets.Puback:
		s.end(p.PacketID, recv)
	case *packets.Pubcomp:
		s.end(p.PacketID, recv)
	case *packets.Suback:
		s.end(p.PacketID, recv)
	case *packets.Unsuback:
		s.end(p.PacketID, recv)
	case *packets.Pubrec:
		if p.ReasonCode >= 0x80 {
			s.end(p.PacketID, recv)
			return nil
		}
		rel := packets.Pubrel{PacketID: p.PacketID}
		s.mu.Lock()
		if _, ok := s.pending[p.PacketID]; !ok {
			rel.ReasonCode = 0x92 // packet identifier not found
		}
		conn := s.conn
		s.mu.Unlock()
		if conn != nil {
			if _, err := rel.WriteTo(conn); err != nil {
				return err
			}
		}
	case *packets.Pubrel: // of a QoS 2 publish from the broker (we never subscribe)
		if conn := s.connection(); conn != nil {
			if _, err := (&packets.Pubcomp{PacketID: p.PacketID}).WriteTo(conn); err != nil {
				return err
			}
		}
	case *packets.Publish: // QoS 1/2 from the broker: hand over; Ack answers
		pubChan <- p
	}
	return nil
}

func (s *pubSession) connection() io.Writer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

// end completes the pending packet id with r, running its callback after
// s.mu is released, and only then frees its slot: the next publish never
// overtakes the report of the one it replaces, so what is acknowledged but
// not yet reported stays within the window.
func (s *pubSession) end(id uint16, r *packets.ControlPacket) {
	s.mu.Lock()
	p, ok := s.pending[id]
	slots := s.slots
	if ok {
		delete(s.pending, id)
	}
	s.mu.Unlock()
	if !ok {
		return // an ack for nothing pending: ignore
	}
	completion{p: p, r: *r}.run()
	if p.publish {
		select {
		case <-slots:
		default:
		}
	}
}

// Ack implements session.SessionManager: acknowledges a PUBLISH received
// from the broker (only if something subscribed, which this sink never
// does).
func (s *pubSession) Ack(pb *packets.Publish) error {
	conn := s.connection()
	if conn == nil {
		return nil
	}
	var err error
	switch pb.QoS {
	case 1:
		_, err = (&packets.Puback{Properties: &packets.Properties{}, PacketID: pb.PacketID}).WriteTo(conn)
	case 2:
		_, err = (&packets.Pubrec{Properties: &packets.Properties{}, PacketID: pb.PacketID}).WriteTo(conn)
	default:
		err = errors.New("ack of a QoS 0 publish")
	}
	return err
}

// Close implements session.SessionManager: fails what is pending (running
// the callbacks before it returns).
func (s *pubSession) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	failed := s.failAllLocked()
	s.mu.Unlock()
	runAll(failed)
	return nil
}

// SetErrorLogger implements session.SessionManager.
func (s *pubSession) SetErrorLogger(paholog.Logger) {}

// SetDebugLogger implements session.SessionManager.
func (s *pubSession) SetDebugLogger(paholog.Logger) {}
