package mqtt

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho/session"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/internal/testenv"
)

// sentPackets decodes what the session wrote.
func sentPackets(t *testing.T, w *testenv.SyncBuffer) []*packets.ControlPacket {
	var out []*packets.ControlPacket
	r := bytes.NewReader(w.Bytes())
	for r.Len() > 0 {
		p, err := packets.ReadPacket(r)
		require.NoError(t, err)
		out = append(out, p)
	}
	return out
}

func connected(t *testing.T, recvMax uint16) (*pubSession, *testenv.SyncBuffer) {
	s := newPubSession()
	t.Cleanup(func() { s.Close() })
	w := &testenv.SyncBuffer{}
	require.NoError(t, s.ConAckReceived(w, &packets.Connect{}, &packets.Connack{Properties: &packets.Properties{ReceiveMaximum: &recvMax}}))
	return s, w
}

// results collects what the callbacks were called with, in call order.
type results struct {
	mu  sync.Mutex
	got []string
}

func (r *results) cb(name string) func(packets.ControlPacket) {
	return func(p packets.ControlPacket) {
		r.mu.Lock()
		defer r.mu.Unlock()
		switch p.Content.(type) {
		case *packets.Puback:
			r.got = append(r.got, name+":acked")
		case *packets.Pubcomp:
			r.got = append(r.got, name+":completed")
		case nil:
			r.got = append(r.got, name+":lost")
		default:
			r.got = append(r.got, name+":other")
		}
	}
}

func (r *results) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

// add publishes a QoS 1 packet with cb; an error means cb was not queued
// (it never runs).
func add(t *testing.T, s *pubSession, cb func(packets.ControlPacket)) (*packets.Publish, error) {
	p := &packets.Publish{QoS: 1, Topic: "t"}
	queued, err := s.publish(context.Background(), p, cb)
	if queued && err != nil {
		t.Errorf("publish queued %d but failed to write it: %v", p.PacketID, err)
	}
	return p, err
}

func ack(t *testing.T, s *pubSession, id uint16) {
	t.Helper()
	require.NoError(t, s.PacketReceived(&packets.ControlPacket{Content: &packets.Puback{PacketID: id}}, nil))
}

func TestPubSessionFlowControlAndAcks(t *testing.T) {
	s, _ := connected(t, 2)
	var r results
	a, err := add(t, s, r.cb("a"))
	require.NoError(t, err)
	b, err := add(t, s, r.cb("b"))
	require.NoError(t, err)
	assert.NotEqual(t, a.PacketID, b.PacketID)

	third := make(chan error, 1)
	go func() { _, err := add(t, s, r.cb("c")); third <- err }()
	select {
	case err := <-third:
		t.Fatalf("a third publish got a slot with Receive Maximum 2 (err %v)", err)
	case <-time.After(100 * time.Millisecond):
	}
	require.NoError(t, s.PacketReceived(&packets.ControlPacket{Content: &packets.Puback{PacketID: b.PacketID}}, nil))
	select {
	case err := <-third:
		require.NoError(t, err, "the ack of b freed a slot")
	case <-time.After(5 * time.Second):
		t.Fatal("an ack did not free a slot")
	}
	require.NoError(t, s.PacketReceived(&packets.ControlPacket{Content: &packets.Puback{PacketID: 999}}, nil), "an ack for nothing pending is ignored")
	require.NoError(t, s.PacketReceived(&packets.ControlPacket{Content: &packets.Puback{PacketID: a.PacketID}}, nil))
	assert.Eventually(t, func() bool { return len(r.list()) == 2 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, []string{"b:acked", "a:acked"}, r.list())
}

// The loss of the connection completes every pending publish (as not
// acknowledged) and releases a publish waiting for a slot.
func TestPubSessionConnectionLostFailsEverythingPending(t *testing.T) {
	s, _ := connected(t, 3)
	var r results
	for _, n := range []string{"a", "b", "c"} {
		_, err := add(t, s, r.cb(n))
		require.NoError(t, err)
	}
	waiting := make(chan error, 1)
	go func() { _, err := add(t, s, r.cb("d")); waiting <- err }()
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, s.ConnectionLost(nil))
	select {
	case err := <-waiting:
		assert.ErrorIs(t, err, session.ErrNoConnection)
	case <-time.After(5 * time.Second):
		t.Fatal("a publish waiting for a slot was not released by the loss")
	}
	assert.Equal(t, []string{"a:lost", "b:lost", "c:lost"}, r.list(), "completed before ConnectionLost returned, in publish order; d never queued")

	_, err := add(t, s, r.cb("e"))
	assert.ErrorIs(t, err, session.ErrNoConnection, "nothing is accepted while disconnected")
	assert.Equal(t, []string{"a:lost", "b:lost", "c:lost"}, r.list(), "e never queued: its callback does not run")
}

func TestPubSessionQoS2Handshake(t *testing.T) {
	s, w := connected(t, 10)
	var r results
	p := &packets.Publish{QoS: 2, Topic: "t"}
	queued, err := s.publish(context.Background(), p, r.cb("a"))
	require.True(t, queued)
	require.NoError(t, err)
	require.NoError(t, s.PacketReceived(&packets.ControlPacket{Content: &packets.Pubrec{PacketID: p.PacketID}}, nil))
	sent := sentPackets(t, w)
	require.Len(t, sent, 2)
	assert.Equal(t, p.PacketID, sent[0].Content.(*packets.Publish).PacketID, "publish wrote the packet with its identifier")
	rel, ok := sent[1].Content.(*packets.Pubrel)
	require.True(t, ok, "PUBREC is answered with PUBREL")
	assert.Equal(t, p.PacketID, rel.PacketID)
	assert.Empty(t, r.list(), "not done before PUBCOMP")
	require.NoError(t, s.PacketReceived(&packets.ControlPacket{Content: &packets.Pubcomp{PacketID: p.PacketID}}, nil))
	assert.Eventually(t, func() bool { return len(r.list()) == 1 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, []string{"a:completed"}, r.list())
}

// Identifiers are never reused while pending, across the wrap at 65535.
func TestPubSessionIdentifiersSkipPendingAcrossTheWrap(t *testing.T) {
	s, _ := connected(t, 65535)
	s.lastID = 65533
	held, err := add(t, s, nil) // 65534 stays pending
	require.NoError(t, err)
	require.Equal(t, uint16(65534), held.PacketID)
	seen := map[uint16]bool{}
	for i := 0; i < 5; i++ {
		p, err := add(t, s, nil)
		require.NoError(t, err)
		assert.NotZero(t, p.PacketID)
		assert.NotEqual(t, held.PacketID, p.PacketID)
		assert.False(t, seen[p.PacketID])
		seen[p.PacketID] = true
		require.NoError(t, s.PacketReceived(&packets.ControlPacket{Content: &packets.Puback{PacketID: p.PacketID}}, nil))
	}
	assert.True(t, seen[65535] && seen[1], "wrapped from 65535 to 1, skipping 0")
}

// Callbacks are keyed by packet identifier: each ack runs the callback of
// its own packet, whatever the order of acks; the callback has run when the
// reader's PacketReceived returns (no queue between the ack and the report,
// so a crash can only redeliver what is in flight); and it runs without the
// session's lock held (a callback may call back into the session).
func TestPubSessionCallbacksKeyedByPacketIDRunAtOnceWithoutTheLock(t *testing.T) {
	s, _ := connected(t, 10)
	var r results
	byName := map[string]*packets.Publish{}
	for _, n := range []string{"a", "b", "c", "d"} {
		cb := r.cb(n)
		if n == "c" {
			cb = func(p packets.ControlPacket) {
				_ = s.window() // takes the session's lock: deadlocks if held
				r.cb("c")(p)
			}
		}
		p, err := add(t, s, cb)
		require.NoError(t, err)
		byName[n] = p
	}
	want := []string{}
	for _, n := range []string{"c", "a", "d", "b"} {
		ack(t, s, byName[n].PacketID)
		want = append(want, n+":acked")
		require.Equal(t, want, r.list(), "the callback of %s (id %d) ran before PacketReceived returned", n, byName[n].PacketID)
	}
	ack(t, s, byName["a"].PacketID) // a second ack of a completed id: ignored
	assert.Equal(t, want, r.list())
}

// A publish whose write fails is queued and completes as lost, exactly once.
func TestPubSessionWriteFailureCompletesTheCallbackOnce(t *testing.T) {
	s := newPubSession()
	t.Cleanup(func() { s.Close() })
	rm := uint16(5)
	require.NoError(t, s.ConAckReceived(failingWriter{}, &packets.Connect{}, &packets.Connack{Properties: &packets.Properties{ReceiveMaximum: &rm}}))
	var r results
	queued, err := s.publish(context.Background(), &packets.Publish{QoS: 1, Topic: "t"}, r.cb("a"))
	assert.True(t, queued)
	assert.Error(t, err)
	require.NoError(t, s.ConnectionLost(nil))
	require.NoError(t, s.Close())
	assert.Equal(t, []string{"a:lost"}, r.list())
	assert.Equal(t, 5, cap(s.slots))
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

// The broker's Maximum QoS: a QoS 2 publish to a QoS 1 broker is refused
// before anything is sent (the broker would drop the connection).
func TestPubSessionRefusesQoSAboveTheBrokersMaximum(t *testing.T) {
	s := newPubSession()
	t.Cleanup(func() { s.Close() })
	w := &testenv.SyncBuffer{}
	one := byte(1)
	require.NoError(t, s.ConAckReceived(w, &packets.Connect{}, &packets.Connack{Properties: &packets.Properties{MaximumQOS: &one}}))
	queued, err := s.publish(context.Background(), &packets.Publish{QoS: 2, Topic: "t"}, func(packets.ControlPacket) { t.Error("callback of a refused publish ran") })
	assert.False(t, queued)
	assert.ErrorContains(t, err, "maximum QoS is 1")
	assert.Empty(t, w.Bytes())
}

// An acknowledged publish frees its slot only after its callback ran: the
// next publish never overtakes the report of the one it replaces, so what
// a crash can redeliver stays within the Receive Maximum.
func TestPubSessionSlotFreedAfterTheCallback(t *testing.T) {
	s, _ := connected(t, 1)
	inCallback, release := make(chan struct{}), make(chan struct{})
	a, err := add(t, s, func(packets.ControlPacket) { close(inCallback); <-release })
	require.NoError(t, err)
	go func() {
		_ = s.PacketReceived(&packets.ControlPacket{Content: &packets.Puback{PacketID: a.PacketID}}, nil)
	}()
	<-inCallback
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	queued, err := s.publish(ctx, &packets.Publish{QoS: 1, Topic: "t"}, nil)
	if queued {
		close(release)
		t.Fatal("a publish took the slot of one whose callback had not returned")
	}
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	close(release)
	_, err = add(t, s, nil)
	assert.NoError(t, err, "the slot is free once the callback returned")
}

// A publish that took its window slot in the instant the connection was
// lost comes back with errNotConnected, never with the lost (nil)
// connection to write to (it wrote to nil and panicked in the broker-kill
// test: the loss keeps the closed lost channel and clears conn).
func TestPubSessionConnectionLostWhileRegistering(t *testing.T) {
	s, _ := connected(t, 10)
	afterSlotHook = func() { require.NoError(t, s.ConnectionLost(nil)) }
	defer func() { afterSlotHook = nil }()
	called := false
	_, err := add(t, s, func(packets.ControlPacket) { called = true })
	assert.ErrorIs(t, err, errNotConnected)
	assert.False(t, called, "not queued: the callback never runs")
}
