package mqtt

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/internal/mosquittotest"
	"github.com/edgepoll/edgepoll/internal/testcerts"
	"github.com/edgepoll/edgepoll/internal/testenv"
	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/sinks/sinktest"
)

const topic = "edge/events"

func newSink(t *testing.T, cfg Config) *Sink {
	s, err := New(context.Background(), cfg, nil)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func itemID(p *paho.Publish) string {
	for _, u := range p.Properties.User {
		if u.Key == "X-ilert-Edge-Item-Id" {
			return u.Value
		}
	}
	return ""
}

func TestDeliveryAllQoSInOrderExactBytes(t *testing.T) {
	b := mosquittotest.Start(t, "allow_anonymous true")
	for qos := 0; qos <= 2; qos++ {
		t.Run(fmt.Sprint("qos", qos), func(t *testing.T) {
			n := 300
			if qos == 1 {
				n = 1000
			}
			sub := mosquittotest.Subscribe(t, b.Port, topic, 2)
			s := newSink(t, Config{Host: "127.0.0.1", Port: b.Port, Topic: topic, QoS: qos})
			evs := sinktest.Events(n)
			errs := sinktest.Send(t, s, evs)
			require.Len(t, errs, n)
			for i, err := range errs {
				require.NoError(t, err, "item %d", i)
			}
			msgs := sub.WaitFor(t, n)
			for i, m := range msgs[:n] {
				assert.Equal(t, strconv.Itoa(i+1), itemID(m), "order")
				assert.Equal(t, string(evs[i].Payload), string(m.Payload), "bytes unchanged")
			}
			assert.Equal(t, "application/json", msgs[0].Properties.ContentType)
		})
	}
}

func TestPasswordAuth(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwd")
	out, err := exec.Command("mosquitto_passwd", "-b", "-c", pw, "edgepoll", "right-Pass").CombinedOutput()
	require.NoError(t, err, string(out))
	b := mosquittotest.Start(t, "allow_anonymous false\npassword_file "+pw)
	s := newSink(t, Config{Host: "127.0.0.1", Port: b.Port, Topic: topic, QoS: 1, Username: "edgepoll", Password: "right-Pass"})
	for _, err := range sinktest.Send(t, s, sinktest.Events(5)) {
		require.NoError(t, err)
	}
	start := time.Now()
	_, err = New(context.Background(), Config{Host: "127.0.0.1", Port: b.Port, Topic: topic, QoS: 1, Username: "edgepoll",
		Password: "wrong-Pass", ConnectTimeout: 10 * time.Second}, nil)
	require.Error(t, err)
	assert.Less(t, time.Since(start), 3*time.Second, "refused fast, not retried until the timeout")
	assert.Contains(t, err.Error(), "mqtt connect refused: not authorized (0x87)")
	assert.Equal(t, "connect_refused", poll.ReasonOf(err))
	assert.NotContains(t, err.Error(), "wrong-Pass")
	assert.False(t, poll.IsPermanent(err))
	_, err = New(context.Background(), Config{Host: "127.0.0.1", Port: b.Port, Topic: topic}, nil)
	require.Error(t, err, "anonymous refused")
}

func TestTLSAndClientCertificates(t *testing.T) {
	dir := t.TempDir()
	certs := testcerts.Generate(t, dir)
	tlsConf := fmt.Sprintf("allow_anonymous true\ncafile %s\ncertfile %s\nkeyfile %s\n", certs.CAFile, certs.ServerCert, certs.ServerKey)
	b := mosquittotest.Start(t, tlsConf)
	s := newSink(t, Config{Host: "127.0.0.1", Port: b.Port, Topic: topic, QoS: 1, CAFile: certs.CAFile})
	for _, err := range sinktest.Send(t, s, sinktest.Events(3)) {
		require.NoError(t, err)
	}
	// An untrusted server certificate fails fast.
	start := time.Now()
	_, err := New(context.Background(), Config{Host: "127.0.0.1", Port: b.Port, Topic: topic, TLS: true}, nil)
	require.Error(t, err)
	assert.Less(t, time.Since(start), 3*time.Second)
	assert.Equal(t, "tls", poll.ReasonOf(err), "%v", err)
	assert.Contains(t, err.Error(), "certificate")

	mtls := mosquittotest.Start(t, tlsConf+"require_certificate true\n")
	_, err = New(context.Background(), Config{Host: "127.0.0.1", Port: mtls.Port, Topic: topic, CAFile: certs.CAFile, ConnectTimeout: 3 * time.Second}, nil)
	require.Error(t, err, "no client certificate")
	s2 := newSink(t, Config{Host: "127.0.0.1", Port: mtls.Port, Topic: topic, QoS: 2, CAFile: certs.CAFile,
		CertFile: certs.ClientCert, KeyFile: certs.ClientKey})
	for _, err := range sinktest.Send(t, s2, sinktest.Events(3)) {
		require.NoError(t, err)
	}
}

func TestUnreachableBrokerBounded(t *testing.T) {
	start := time.Now()
	_, err := New(context.Background(), Config{Host: "127.0.0.1", Port: testenv.FreePort(t), Topic: topic, ConnectTimeout: time.Second}, nil)
	require.Error(t, err)
	assert.Less(t, time.Since(start), 3*time.Second)
	assert.Equal(t, "connection_refused", poll.ReasonOf(err))
	assert.Contains(t, err.Error(), "connection refused")
}

// Only items whose own PUBACK arrived count: with a broker that acknowledges
// slowly (max_inflight 5), a SIGKILL mid-batch leaves a delivered prefix and
// fails the rest; a restarted broker and the next cycle deliver the rest.
func TestBrokerKilledMidBatchThroughTheCycle(t *testing.T) {
	b := mosquittotest.Start(t, "allow_anonymous true\nmax_inflight_messages 5")
	s := newSink(t, Config{Host: "127.0.0.1", Port: b.Port, Topic: topic, QoS: 1})
	cycle, _ := sinktest.Cycle(t, s, 3000)

	sub1 := mosquittotest.Subscribe(t, b.Port, topic, 1)
	// SIGKILL the broker right after item 350 was acknowledged, in the
	// middle of the cycle's fourth batch, with more publishes in flight.
	cycle.Sink = &killAfter{Sink: s, id: 350, kill: b.Kill}
	sum, err := cycle.Run(context.Background(), sinktest.Invocation)
	require.Error(t, err, "the broker died mid-cycle")
	assert.Contains(t, err.Error(), "connection")
	assert.Greater(t, sum.Cursor, int64(0))
	assert.Less(t, sum.Cursor, int64(3000))
	first := sub1.Got()
	for i, m := range first {
		require.Equal(t, strconv.Itoa(i+1), itemID(m), "in order before the kill")
	}

	assert.GreaterOrEqual(t, sum.Cursor, int64(350))

	cycle.Sink = s
	b.Restart() // restart on the same port
	sub2 := mosquittotest.Subscribe(t, b.Port, topic, 1)
	for {
		sum2, err := cycle.Run(context.Background(), sinktest.Invocation)
		require.NoError(t, err)
		if sum2.Cursor == 3000 {
			break
		}
	}
	rest := sub2.WaitFor(t, int(3000-sum.Cursor))
	for i, m := range rest[:3000-sum.Cursor] {
		require.Equal(t, strconv.Itoa(int(sum.Cursor)+i+1), itemID(m), "the rest in order after the restart")
	}
}

// killAfter calls kill once, right after the report of item id.
type killAfter struct {
	poll.Sink
	id   int64
	kill func()
	once sync.Once
}

func (k *killAfter) Send(ctx context.Context, evs []poll.Event, report func(int, error) bool) {
	k.Sink.Send(ctx, evs, func(i int, err error) bool {
		more := report(i, err)
		if evs[i].ID == k.id {
			k.once.Do(k.kill)
		}
		return more
	})
}

func TestConfigErrors(t *testing.T) {
	for field, cfg := range map[string]Config{
		"mqtt-host":     {Topic: "t"},
		"topic":         {Host: "h", Topic: "a/+/b"},
		"mqtt-qos":      {Host: "h", Topic: "t", QoS: 3},
		"mqtt-port":     {Host: "h", Topic: "t", Port: 70000},
		"mqtt-password": {Host: "h", Topic: "t", Password: "p"},
		"mqtt-cert":     {Host: "h", Topic: "t", CertFile: "/x"},
		"mqtt-ca":       {Host: "h", Topic: "t", CAFile: "/nonexistent"},
	} {
		_, err := New(context.Background(), cfg, nil)
		var ce *poll.ConfigError
		require.ErrorAs(t, err, &ce, field)
		assert.Equal(t, field, ce.Field)
		assert.False(t, strings.Contains(err.Error(), "p\""))
	}
}

// silentBroker accepts CONNECT with a success CONNACK, then reads and
// ignores everything: it never acknowledges a publish.
func silentBroker(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				if _, err := packets.ReadPacket(r); err != nil { // CONNECT
					return
				}
				_, _ = c.Write([]byte{0x20, 0x03, 0x00, 0x00, 0x00}) // CONNACK v5: success, no properties
				_, _ = io.Copy(io.Discard, r)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestBrokerThatNeverAcksIsBounded(t *testing.T) {
	port := silentBroker(t)
	s := newSink(t, Config{Host: "127.0.0.1", Port: port, Topic: topic, QoS: 1, AckTimeout: time.Second})
	start := time.Now()
	errs := sinktest.Send(t, s, sinktest.Events(5))
	assert.Less(t, time.Since(start), 5*time.Second)
	require.Len(t, errs, 5)
	for _, err := range errs {
		require.Error(t, err)
		assert.False(t, poll.IsPermanent(err))
		assert.Equal(t, "ack_timeout", poll.ReasonOf(err))
	}
	// The next Send reconnects (and is bounded again).
	errs = sinktest.Send(t, s, sinktest.Events(1))
	require.Error(t, errs[0])
}

// A slow store does not slow the pipelined drain: every Save is held until
// its whole batch was acknowledged, and each batch costs one more Save.
func TestSlowStoreDoesNotSlowTheDrain(t *testing.T) {
	b := mosquittotest.Start(t, "allow_anonymous true\nmax_inflight_messages 10")
	for _, qos := range []int{1, 2} {
		t.Run(fmt.Sprint("qos", qos), func(t *testing.T) {
			sinktest.SlowStoreDrain(t, newSink(t, Config{Host: "127.0.0.1", Port: b.Port, Topic: topic, QoS: qos}), 300)
		})
	}
}

// A broker's Maximum Packet Size (CONNACK): a PUBLISH of exactly that size
// is sent and delivered, one byte more is refused without being sent
// (permanent: mosquitto would drop the connection over it) and the next
// item still goes out; at QoS 0 and 1. The sizes are measured by encoding
// the packet, apart from the sink's own arithmetic.
func TestMaximumPacketSize(t *testing.T) {
	const limit = 4096
	b := mosquittotest.Start(t, fmt.Sprintf("allow_anonymous true\nmax_packet_size %d", limit))
	for qos := 0; qos <= 1; qos++ {
		t.Run(fmt.Sprint("qos", qos), func(t *testing.T) {
			sub := mosquittotest.Subscribe(t, b.Port, topic, 1)
			s := newSink(t, Config{Host: "127.0.0.1", Port: b.Port, Topic: topic, QoS: qos})
			sized := func(id int64, size int) poll.Event {
				for pad := size; pad > 0; pad-- {
					ev := poll.NewEvent(id, []byte(`{"id":"a","pad":"`+strings.Repeat("x", pad)+`"}`))
					p := &paho.Publish{Topic: topic, QoS: byte(qos), Payload: ev.Payload, Properties: properties(ev)}
					var buf bytes.Buffer
					_, err := p.Packet().WriteTo(&buf)
					require.NoError(t, err)
					if buf.Len() == size {
						return ev
					}
				}
				t.Fatalf("no payload makes a %d-byte packet", size)
				return poll.Event{}
			}
			evs := []poll.Event{sized(1, limit), sized(2, limit+1), poll.NewEvent(3, []byte(`{"id":"a"}`))}
			errs := sinktest.Send(t, s, evs)
			require.NoError(t, errs[0], "exactly the limit")
			require.Error(t, errs[1])
			assert.True(t, poll.IsPermanent(errs[1]), "%v", errs[1])
			assert.Equal(t, "mqtt_packet_too_large", poll.ReasonOf(errs[1]))
			require.NoError(t, errs[2], "the item after the refused one")
			msgs := sub.WaitFor(t, 2)
			assert.Equal(t, []string{"1", "3"}, []string{itemID(msgs[0]), itemID(msgs[1])})
		})
	}
}
