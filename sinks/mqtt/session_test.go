package mqtt

import (
	"bytes"
	"context"
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

func add(t *testing.T, s *pubSession, cb func(packets.ControlPacket)) (*packets.Publish, error) {
	p := &packets.Publish{QoS: 1, Topic: "t"}
	s.expect(cb)
	err := s.AddToSession(context.Background(), p, make(chan packets.ControlPacket, 1))
	return p, err
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
	assert.True(t, s.unexpect(), "d never reached the session: its callback will not run")
	assert.Eventually(t, func() bool { return len(r.list()) == 3 }, 5*time.Second, time.Millisecond)
	assert.ElementsMatch(t, []string{"a:lost", "b:lost", "c:lost"}, r.list())

	_, err := add(t, s, r.cb("e"))
	assert.ErrorIs(t, err, session.ErrNoConnection, "nothing is accepted while disconnected")
	assert.True(t, s.unexpect())
}

func TestPubSessionQoS2Handshake(t *testing.T) {
	s, w := connected(t, 10)
	var r results
	p := &packets.Publish{QoS: 2, Topic: "t"}
	s.expect(r.cb("a"))
	require.NoError(t, s.AddToSession(context.Background(), p, make(chan packets.ControlPacket, 1)))
	require.NoError(t, s.PacketReceived(&packets.ControlPacket{Content: &packets.Pubrec{PacketID: p.PacketID}}, nil))
	sent := sentPackets(t, w)
	require.Len(t, sent, 1)
	rel, ok := sent[0].Content.(*packets.Pubrel)
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
