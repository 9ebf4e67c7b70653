// Package latencyproxy is a loopback TCP proxy that delays every byte by a
// fixed one-way latency in each direction, preserving order and throughput:
// benchmarks use it to measure pipelining with a realistic round trip
// without any network emulation privileges.
package latencyproxy

import (
	"io"
	"net"
	"sync"
	"time"
)

// Proxy forwards connections on Addr to a target.
type Proxy struct {
	Addr string
	ln   net.Listener
	wg   sync.WaitGroup
}

// Start proxies 127.0.0.1:<free port> to target with oneWay latency per
// direction (a round trip costs 2*oneWay).
func Start(target string, oneWay time.Duration) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Addr: ln.Addr().String(), ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go pipe(c, u, oneWay)
			go pipe(u, c, oneWay)
		}
	}()
	return p, nil
}

type chunk struct {
	at   time.Time
	data []byte
}

// pipe copies src to dst, releasing each chunk oneWay after it was read.
func pipe(src, dst net.Conn, oneWay time.Duration) {
	ch := make(chan chunk, 4096)
	go func() {
		defer close(ch)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				ch <- chunk{at: time.Now().Add(oneWay), data: buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range ch {
		if d := time.Until(c.at); d > 0 {
			time.Sleep(d)
		}
		if _, err := dst.Write(c.data); err != nil {
			break
		}
	}
	_ = src.Close()
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	} else {
		_ = dst.Close()
	}
	_, _ = io.Copy(io.Discard, src)
}

// Close stops accepting connections.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.wg.Wait()
	return err
}
