package latencyproxy

import (
	"bufio"
	"net"
	"testing"
	"time"
)

func TestAddsRoundTripLatency(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				r := bufio.NewReader(c)
				for {
					l, err := r.ReadBytes('\n')
					if err != nil {
						return
					}
					_, _ = c.Write(l)
				}
			}()
		}
	}()
	p, err := Start(ln.Addr().String(), 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	start := time.Now()
	for i := 0; i < 3; i++ {
		_, _ = c.Write([]byte("ping\n"))
		if l, err := r.ReadString('\n'); err != nil || l != "ping\n" {
			t.Fatalf("echo: %q %v", l, err)
		}
	}
	if d := time.Since(start); d < 120*time.Millisecond {
		t.Fatalf("3 round trips took %v, want >= 120ms", d)
	}
}
