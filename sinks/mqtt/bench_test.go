package mqtt

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/edgepoll/edgepoll/internal/latencyproxy"
	"github.com/edgepoll/edgepoll/internal/mosquittotest"
	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/sinks/sinktest"
	"github.com/edgepoll/edgepoll/state/jsonfile"
)

// BenchmarkMQTT: 1000 items of ~1 KiB at QoS 1 against mosquitto, in one
// run: this sink, (a) one publish-and-wait per item (how the reference agent
// delivers), (b) raw pipelined paho publishes from 64 goroutines (no order);
// over plain loopback and through a proxy adding a 1 ms round trip.
func BenchmarkMQTT(b *testing.B) {
	// mosquitto's default window is 20 unacknowledged messages per client
	// (max_inflight_messages, sent as Receive Maximum); a larger one is a
	// broker setting users choose.
	for _, window := range []int{20, 200} {
		br := mosquittotest.Start(b, fmt.Sprintf("allow_anonymous true\nmax_inflight_messages %d", window))
		proxy, err := latencyproxy.Start("127.0.0.1:"+strconv.Itoa(br.Port), 500*time.Microsecond)
		if err != nil {
			b.Fatal(err)
		}
		_, pport, _ := net.SplitHostPort(proxy.Addr)
		proxyPort, _ := strconv.Atoi(pport)
		for _, link := range []struct {
			name string
			port int
		}{{"loopback", br.Port}, {"rtt-1ms", proxyPort}} {
			b.Run(fmt.Sprintf("window-%d/%s", window, link.name), func(b *testing.B) { benchMQTT(b, link.port) })
		}
		proxy.Close()
		br.Kill()
	}
}

func benchMQTT(b *testing.B, port int) {
	evs := sinktest.Sized(1000, 1024, 1000)
	payloads := sinktest.Payloads(evs)
	rate := func(b *testing.B) { sinktest.ItemsPerSecond(b, len(evs)) }
	rawClient := func(b *testing.B) *paho.Client { return rawPaho(b, port) }
	b.Run("a-publish-and-wait", func(b *testing.B) {
		cl := rawClient(b)
		for i := 0; i < b.N; i++ {
			for _, ev := range evs {
				if _, err := cl.Publish(context.Background(), &paho.Publish{Topic: topic, QoS: 1, Payload: ev.Payload}); err != nil {
					b.Fatal(err)
				}
			}
		}
		rate(b)
	})
	b.Run("b-raw-pipelined", func(b *testing.B) {
		cl := rawClient(b)
		for i := 0; i < b.N; i++ {
			publishPipelined(b, cl, payloads)
		}
		rate(b)
	})
	b.Run("edgepoll-sink", func(b *testing.B) {
		s, err := New(context.Background(), Config{Host: "127.0.0.1", Port: port, Topic: topic, QoS: 1}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		sinktest.Bench(b, s, evs)
	})
}

// BenchmarkMQTTCycle: a whole cycle (lease, 10 polls, deliveries, cursor
// saves, release) draining 1000 items of ~1 KiB at QoS 1 from the fake
// ilert API to mosquitto on loopback, with JSON or DynamoDB (dynalite)
// state, against a bare loop that polls its own fake API the same way and
// publishes each page with raw pipelined paho publishes from 64 goroutines,
// waiting for the page's acknowledgements, no state: paired in one
// benchmark (ratio = edgepoll / bare loop). Secondary figure: the raw
// publishes of the 1000 payloads alone, no polling
// (ratio-vs-raw-publish-only).
func BenchmarkMQTTCycle(b *testing.B) {
	payloads := sinktest.Payloads(sinktest.Sized(1000, 1024, 1000))
	for _, window := range []int{20, 200} {
		br := mosquittotest.Start(b, fmt.Sprintf("allow_anonymous true\nmax_inflight_messages %d", window))
		raw := rawPaho(b, br.Port)
		publishOnly := sinktest.Reference{Name: "raw-publish-only", Run: func(int) time.Duration {
			start := time.Now()
			publishPipelined(b, raw, payloads)
			return time.Since(start)
		}}
		for _, state := range []string{"json", "dynamodb"} {
			b.Run(fmt.Sprintf("window-%d/%s", window, state), func(b *testing.B) {
				var store poll.Store
				if state == "dynamodb" {
					store = sinktest.Dynamo(b)
				} else {
					st, err := jsonfile.Open(context.Background(), filepath.Join(b.TempDir(), "state.json"), nil)
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { _ = st.Close() })
					store = st
				}
				s, err := New(context.Background(), Config{Host: "127.0.0.1", Port: br.Port, Topic: topic, QoS: 1}, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				bareLoop := sinktest.PlainDrain(b, payloads, func(page []sinktest.PlainItem) {
					ps := make([]json.RawMessage, len(page))
					for i, it := range page {
						ps[i] = it.Payload
					}
					publishPipelined(b, raw, ps)
				})
				sinktest.Paired(b, len(payloads), bareLoop, sinktest.CycleDrain(b, s, store, payloads), publishOnly)
			})
		}
		br.Kill()
	}
}

// rawPaho connects a plain paho client to the broker on port.
func rawPaho(b *testing.B, port int) *paho.Client {
	conn, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		b.Fatal(err)
	}
	cl := paho.NewClient(paho.ClientConfig{Conn: conn})
	if _, err := cl.Connect(context.Background(), &paho.Connect{ClientID: fmt.Sprint("bench-", b.N, "-", time.Now().UnixNano()), CleanStart: true, KeepAlive: 30}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cl.Disconnect(&paho.Disconnect{}) })
	return cl
}

// publishPipelined publishes payloads at QoS 1 from 64 goroutines (no
// order) and returns once all were acknowledged: the raw pipelined paho
// baseline.
func publishPipelined(b *testing.B, cl *paho.Client, payloads []json.RawMessage) {
	var wg sync.WaitGroup
	ch := make(chan json.RawMessage)
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range ch {
				if _, err := cl.Publish(context.Background(), &paho.Publish{Topic: topic, QoS: 1, Payload: p}); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for _, p := range payloads {
		ch <- p
	}
	close(ch)
	wg.Wait()
}
