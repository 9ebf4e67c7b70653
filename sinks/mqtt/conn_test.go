package mqtt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	server = <-accepted
	require.NotNil(t, server)
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// countingConn counts the write calls that reach the socket.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// Packets written by concurrent writers, each under the lock in four
// pieces (as paho does), arrive whole, each one contiguous, in far fewer
// system calls than pieces.
func TestCoalescingConnKeepsPacketsWhole(t *testing.T) {
	client, server := tcpPair(t)
	counted := &countingConn{Conn: client}
	cc := newCoalescingConn(counted, client)
	const writers, perWriter = 8, 500
	var want bytes.Buffer
	var wmu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				pkt := fmt.Sprintf("<%d:%04d|%s>", w, i, bytes.Repeat([]byte{'a' + byte(w)}, 100+i%50))
				cc.Lock()
				for _, piece := range []string{pkt[:1], pkt[1:3], pkt[3:10], pkt[10:]} {
					_, err := cc.Write([]byte(piece))
					assert.NoError(t, err)
				}
				wmu.Lock()
				want.WriteString(pkt)
				wmu.Unlock()
				cc.Unlock()
			}
		}()
	}
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(server)
		got <- b
	}()
	wg.Wait()
	require.NoError(t, cc.Flush(5*time.Second))
	require.NoError(t, cc.Close())
	assert.Equal(t, want.String(), string(<-got), "packets intact, in the order the lock granted")
	counted.mu.Lock()
	defer counted.mu.Unlock()
	assert.Less(t, counted.writes, writers*perWriter*4/2, "coalesced: fewer write calls than half the pieces")
	t.Logf("%d pieces in %d write calls", writers*perWriter*4, counted.writes)
}

// failingConn fails every write.
type failingConn struct {
	net.Conn
	closed chan struct{}
	once   sync.Once
}

func (f *failingConn) Write([]byte) (int, error) { return 0, errors.New("connection reset by peer") }
func (f *failingConn) Close() error {
	f.once.Do(func() { close(f.closed) })
	return nil
}

func TestCoalescingConnWriteErrorIsStickyAndClosesTheConnection(t *testing.T) {
	client, _ := tcpPair(t)
	fc := &failingConn{Conn: client, closed: make(chan struct{})}
	cc := newCoalescingConn(fc, nil)
	_, err := cc.Write([]byte("PUBLISH"))
	require.NoError(t, err, "queued")
	err = cc.Flush(5 * time.Second)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "reset")
	select {
	case <-fc.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the failed write did not close the connection (paho's reader would never learn)")
	}
	_, err = cc.Write([]byte("next"))
	assert.ErrorContains(t, err, "reset", "later writes fail too")
}

// A peer that stops reading: Flush gives up at its timeout instead of
// hanging, and writers are held back at maxPending instead of buffering
// without bound.
func TestCoalescingConnStalledPeer(t *testing.T) {
	client, _ := tcpPair(t) // the server end is never read
	cc := newCoalescingConn(client, client)
	chunk := make([]byte, 64<<10)
	blocked := make(chan struct{})
	go func() {
		defer close(blocked)
		for i := 0; i < 1000; i++ { // 64 MiB: far beyond socket buffers and maxPending
			if _, err := cc.Write(chunk); err != nil {
				return
			}
		}
	}()
	select {
	case <-blocked:
		t.Fatal("64 MiB queued for a peer that reads nothing: no backpressure")
	case <-time.After(500 * time.Millisecond):
	}
	cc.mu.Lock()
	pending := len(cc.pending)
	cc.mu.Unlock()
	assert.LessOrEqual(t, pending, maxPending+len(chunk))
	assert.ErrorIs(t, cc.Flush(200*time.Millisecond), errFlushTimeout)
	require.NoError(t, cc.Close())
	select {
	case <-blocked: // Close released the blocked writer
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not release a writer blocked on a stalled peer")
	}
}

func TestCoalescingConnCloseWritesWhatIsQueued(t *testing.T) {
	client, server := tcpPair(t)
	cc := newCoalescingConn(client, client)
	_, err := cc.Write([]byte("DISCONNECT"))
	require.NoError(t, err)
	require.NoError(t, cc.Close())
	b, err := io.ReadAll(server)
	require.NoError(t, err)
	assert.Equal(t, "DISCONNECT", string(b))
	_, err = cc.Write([]byte("x"))
	assert.ErrorIs(t, err, net.ErrClosed)
}
