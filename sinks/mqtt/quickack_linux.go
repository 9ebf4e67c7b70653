package mqtt

import (
	"io"
	"net"
	"syscall"
)

// quickAckReader returns r, re-arming TCP_QUICKACK on raw's socket after
// every read (the kernel clears it on its own after a few segments).
func quickAckReader(r io.Reader, raw net.Conn) io.Reader {
	sc, ok := raw.(syscall.Conn)
	if !ok {
		return r
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return r
	}
	return &quickAck{r: r, rc: rc}
}

type quickAck struct {
	r  io.Reader
	rc syscall.RawConn
}

func (q *quickAck) Read(p []byte) (int, error) {
	n, err := q.r.Read(p)
	if n > 0 {
		// Best effort: a failure only costs the delayed acknowledgement.
		_ = q.rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
		})
	}
	return n, err
}
