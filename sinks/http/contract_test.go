package http_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	nethttp "net/http"
	"sync"
	"testing"
	"time"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/sinks"
	"github.com/edgepoll/edgepoll/sinks/contract"
	edgehttp "github.com/edgepoll/edgepoll/sinks/http"
)

// contractServer is a real HTTP server on a loopback port: 204 for an
// item (recorded), 400 for a payload marked "refuse", a request held while
// hanging; Break stops it (connection refused) and repair starts it again
// on the same port.
type contractServer struct {
	t    *testing.T
	addr string
	mu   sync.Mutex
	srv  *nethttp.Server
	got  []string
	hang chan struct{} // non-nil: requests wait for it
}

var refuseMark = []byte(`"refuse":true`)

func (c *contractServer) ServeHTTP(w nethttp.ResponseWriter, r *nethttp.Request) {
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	hang := c.hang
	c.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-r.Context().Done():
			return
		}
	}
	if bytes.Contains(body, refuseMark) {
		w.WriteHeader(nethttp.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.got = append(c.got, r.Header.Get("X-Ilert-Edge-Item-Id"))
	c.mu.Unlock()
	w.WriteHeader(nethttp.StatusNoContent)
}

func (c *contractServer) start() {
	l, err := net.Listen("tcp", c.addr)
	if err != nil {
		c.t.Fatal(err)
	}
	c.addr = l.Addr().String()
	srv := &nethttp.Server{Handler: c, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, nethttp.ErrServerClosed) {
			c.t.Errorf("serve: %v", err)
		}
	}()
	c.mu.Lock()
	c.srv = srv
	c.mu.Unlock()
}

func (c *contractServer) stop() {
	c.mu.Lock()
	srv := c.srv
	c.srv = nil
	c.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

func TestContract(t *testing.T) {
	contract.Run(t, contract.Harness{
		New: func(t *testing.T) contract.Target {
			c := &contractServer{t: t, addr: "127.0.0.1:0"}
			c.start()
			t.Cleanup(c.stop)
			o := edgehttp.Registration.New().(*edgehttp.Options)
			o.URL, o.Method, o.Timeout = "http://"+c.addr+"/hook", "POST", 10*time.Second
			s := contract.Open(t, o, sinks.Shared{}, sinks.Env{})
			return contract.Target{
				Sink: s,
				Received: func() []string {
					c.mu.Lock()
					defer c.mu.Unlock()
					return append([]string(nil), c.got...)
				},
				Break: func() func() { c.stop(); return c.start },
				Hang: func() func() {
					ch := make(chan struct{})
					c.mu.Lock()
					c.hang = ch
					c.mu.Unlock()
					return func() {
						c.mu.Lock()
						c.hang = nil
						c.mu.Unlock()
						close(ch)
					}
				},
			}
		},
		Refused: func(ev poll.Event) poll.Event {
			return poll.NewEvent(ev.ID, []byte(`{"id":"alert-x","eventType":"alert-created","refuse":true}`))
		},
		CheckSeesBreak: true,
	})
}
