package mqtt

import (
	"context"
	"errors"
	"io"
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
// are unacknowledged; AddToSession blocks for a slot. Completion (the ack,
// or the loss of the connection) goes to the channel paho passes, and to the
// callback the sender set with expect, run in order on one goroutine per
// session so that paho's reader never waits on the sink.
type pubSession struct {
	mu      sync.Mutex
	conn    io.Writer     // nil while not connected
	lost    chan struct{} // closed when the connection is lost
	slots   chan struct{} // one token per unacknowledged PUBLISH
	pending map[uint16]pendingPacket
	lastID  uint16
	next    func(packets.ControlPacket) // callback for the next AddToSession
	closed  bool

	done chan completion // to the callback runner
	wg   sync.WaitGroup
}

type pendingPacket struct {
	publish bool
	resp    chan<- packets.ControlPacket
	cb      func(packets.ControlPacket)
}

type completion struct {
	cb func(packets.ControlPacket)
	p  packets.ControlPacket
}

var _ session.SessionManager = (*pubSession)(nil)

func newPubSession() *pubSession {
	s := &pubSession{pending: map[uint16]pendingPacket{}, lost: make(chan struct{}), done: make(chan completion, 256)}
	close(s.lost) // not connected yet
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for c := range s.done {
			c.cb(c.p)
		}
	}()
	return s
}

// expect sets the callback for the packet of the next AddToSession (the
// sink has one sender goroutine).
func (s *pubSession) expect(cb func(packets.ControlPacket)) {
	s.mu.Lock()
	s.next = cb
	s.mu.Unlock()
}

// unexpect clears the callback set by expect and reports whether it was
// still set, that is, never attached to a packet (it will never run).
func (s *pubSession) unexpect() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	had := s.next != nil
	s.next = nil
	return had
}

// ConAckReceived implements session.SessionManager.
func (s *pubSession) ConAckReceived(conn io.Writer, _ *packets.Connect, ca *packets.Connack) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failAllLocked()
	rm := 65535
	if ca.Properties != nil && ca.Properties.ReceiveMaximum != nil && *ca.Properties.ReceiveMaximum > 0 {
		rm = int(*ca.Properties.ReceiveMaximum)
	}
	s.conn, s.lost, s.slots = conn, make(chan struct{}), make(chan struct{}, rm)
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
	defer s.mu.Unlock()
	s.failAllLocked()
	return nil
}

func (s *pubSession) failAllLocked() {
	if s.conn != nil {
		close(s.lost)
		s.conn = nil
	}
	for id, p := range s.pending {
		delete(s.pending, id)
		s.completeLocked(p, packets.ControlPacket{})
	}
}

// completeLocked hands p's result over; the caller holds s.mu.
func (s *pubSession) completeLocked(p pendingPacket, r packets.ControlPacket) {
	select {
	case p.resp <- r: // paho's channel has room for one
	default:
	}
	if p.cb != nil && !s.closed {
		s.done <- completion{p.cb, r}
	}
}

// AddToSession implements session.SessionManager: it waits for a slot
// (PUBLISH only) and allocates a packet identifier.
func (s *pubSession) AddToSession(ctx context.Context, packet session.Packet, resp chan<- packets.ControlPacket) error {
	s.mu.Lock()
	lost, slots, connected := s.lost, s.slots, s.conn != nil
	s.mu.Unlock()
	if !connected {
		return session.ErrNoConnection
	}
	publish := packet.Type() == packets.PUBLISH
	if publish {
		select {
		case slots <- struct{}{}:
		case <-lost:
			return session.ErrNoConnection
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lost != lost { // lost (and perhaps reconnected) while waiting
		return session.ErrNoConnection
	}
	id := s.lastID
	for range 65535 {
		id++
		if id == 0 {
			id = 1
		}
		if _, used := s.pending[id]; !used {
			s.lastID = id
			// The callback is taken only now: on every error return it
			// stays set, and unexpect tells the sender it never will run.
			s.pending[id] = pendingPacket{publish: publish, resp: resp, cb: s.next}
			s.next = nil
			packet.SetIdentifier(id)
			return nil
		}
	}
	if publish {
		<-slots
	}
	return session.ErrPacketIdentifiersExhausted
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

// end completes the pending packet id with r and frees its slot.
func (s *pubSession) end(id uint16, r *packets.ControlPacket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pending[id]
	if !ok {
		return // an ack for nothing pending: ignore
	}
	delete(s.pending, id)
	if p.publish {
		select {
		case <-s.slots:
		default:
		}
	}
	s.completeLocked(p, *r)
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

// Close implements session.SessionManager: fails what is pending, runs the
// outstanding callbacks and stops the runner.
func (s *pubSession) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.failAllLocked()
	s.closed = true
	close(s.done)
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// SetErrorLogger implements session.SessionManager.
func (s *pubSession) SetErrorLogger(paholog.Logger) {}

// SetDebugLogger implements session.SessionManager.
func (s *pubSession) SetDebugLogger(paholog.Logger) {}
