package mqtt

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"time"
)

// coalescingConn is the connection paho reads from and writes to.
//
// Reads: paho reads each packet with two or three small reads (type, length,
// body); here they come out of a buffer filled by large socket reads. After
// every socket read the connection re-arms TCP quick acknowledgements
// (Linux): most brokers (mosquitto by default) leave Nagle's algorithm on,
// so a PUBACK waits until the broker's previous small segment was
// acknowledged, and a delayed acknowledgement on this side (40 ms on Linux)
// stalled every batch's last acknowledgements by that much, about two
// thirds of the time of a 1000-item batch on loopback.
//
// Writes: paho encodes a packet
// as several small writes (fixed header, variable header, properties,
// payload) and, because the connection is not a *net.TCPConn once wrapped
// for thread safety, each becomes its own write system call and TCP
// segment: four per PUBLISH, each waking the broker. Here writes only
// append to a buffer, and one flusher goroutine hands everything buffered
// to the kernel in one call, so a pipelined batch goes out in a few large
// writes whatever the number of packets.
//
// It is a sync.Locker, so paho's ControlPacket.WriteTo holds the lock for
// one whole packet and packets never interleave. A failed write closes the
// connection (paho's reader then reports the loss) and every later Write
// and Flush returns the error. Nothing here decides delivery: QoS 1 and 2
// items count only when their acknowledgement arrives, and QoS 0 items only
// after Flush confirmed that their bytes were written.
type coalescingConn struct {
	net.Conn
	packet sync.Mutex // held by paho for one packet
	r      *bufio.Reader

	mu      sync.Mutex
	cond    sync.Cond // on mu: data queued, data written, failure, close
	pending []byte    // queued, not yet handed to the flusher
	queued  uint64    // bytes ever queued
	written uint64    // bytes ever written
	err     error     // first write error, sticky
	closing bool
	gone    bool          // the flusher exited
	done    chan struct{} // closed when the flusher exits
}

// maxPending bounds the buffer: a writer waits while this much is queued.
const maxPending = 1 << 20

// newCoalescingConn wraps c; raw is the TCP connection beneath (c itself,
// or the one under TLS), used to re-arm quick acknowledgements; nil for
// none.
func newCoalescingConn(c, raw net.Conn) *coalescingConn {
	cc := &coalescingConn{Conn: c, done: make(chan struct{})}
	cc.r = bufio.NewReaderSize(quickAckReader(c, raw), 32<<10)
	cc.cond.L = &cc.mu
	go cc.flush()
	return cc
}

// Read reads from the buffer (only paho's single reader calls it).
func (c *coalescingConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *coalescingConn) Lock()   { c.packet.Lock() }
func (c *coalescingConn) Unlock() { c.packet.Unlock() }

// Write queues p (copied) for the flusher.
func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.err == nil && !c.closing && !c.gone && len(c.pending) >= maxPending {
		c.cond.Wait()
	}
	if c.err != nil {
		return 0, c.err
	}
	if c.closing || c.gone {
		return 0, net.ErrClosed
	}
	c.pending = append(c.pending, p...)
	c.queued += uint64(len(p))
	c.cond.Broadcast()
	return len(p), nil
}

func (c *coalescingConn) flush() {
	defer func() {
		c.mu.Lock()
		c.gone = true
		c.cond.Broadcast()
		c.mu.Unlock()
		close(c.done)
	}()
	var spare []byte
	for {
		c.mu.Lock()
		for len(c.pending) == 0 && !c.closing && c.err == nil {
			c.cond.Wait()
		}
		if len(c.pending) == 0 || c.err != nil {
			c.mu.Unlock()
			return
		}
		buf := c.pending
		c.pending = spare[:0]
		c.cond.Broadcast() // room for writers waiting on maxPending
		c.mu.Unlock()

		n, err := c.Conn.Write(buf)

		c.mu.Lock()
		c.written += uint64(n)
		if err != nil && c.err == nil {
			c.err = err
		}
		c.cond.Broadcast()
		c.mu.Unlock()
		if err != nil {
			_ = c.Conn.Close() // wakes paho's reader: the connection is lost
			return
		}
		spare = buf
	}
}

// Flush waits until everything queued before the call was written, the
// connection failed, or timeout passed; it returns the write error, or
// errFlushTimeout.
func (c *coalescingConn) Flush(timeout time.Duration) error {
	t := time.AfterFunc(timeout, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer t.Stop()
	deadline := time.Now().Add(timeout)
	c.mu.Lock()
	defer c.mu.Unlock()
	target := c.queued
	for c.written < target && c.err == nil {
		if c.gone {
			return net.ErrClosed
		}
		if !time.Now().Before(deadline) {
			return errFlushTimeout
		}
		c.cond.Wait()
	}
	return c.err
}

var errFlushTimeout = errors.New("writing to the broker timed out")

// Close writes what is queued (a DISCONNECT paho just wrote, say) for up
// to a second, then closes the connection.
func (c *coalescingConn) Close() error {
	c.mu.Lock()
	already := c.closing
	c.closing = true
	c.cond.Broadcast()
	c.mu.Unlock()
	if !already {
		select {
		case <-c.done:
		case <-time.After(time.Second):
		}
	}
	return c.Conn.Close()
}
