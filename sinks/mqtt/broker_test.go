package mqtt

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/edgepoll/edgepoll/internal/testenv"
)

// broker is a real mosquitto started by the test on a loopback port.
type broker struct {
	t    testing.TB
	bin  string
	conf string
	port int
	cmd  *exec.Cmd
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startBroker writes a config (listener + extra lines) and starts mosquitto.
func startBroker(t testing.TB, extra string) *broker {
	bin := testenv.LookPath(t, "mosquitto", "apt-get install mosquitto (scripts/test-deps.sh)", "/usr/sbin/mosquitto")
	b := &broker{t: t, bin: bin, port: freePort(t)}
	dir := t.TempDir()
	b.conf = filepath.Join(dir, "mosquitto.conf")
	conf := fmt.Sprintf("listener %d 127.0.0.1\npersistence false\nlog_dest stderr\nlog_type error\n%s\n", b.port, extra)
	if os.Geteuid() == 0 {
		// As root, mosquitto drops to its own user, which cannot read the
		// test's private temp files: stay root (tests only).
		conf = "user root\n" + conf
	}
	if err := os.WriteFile(b.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	b.start()
	t.Cleanup(b.kill)
	return b
}

func (b *broker) start() {
	b.cmd = exec.Command(b.bin, "-c", b.conf)
	b.cmd.Stderr = os.Stderr
	if err := b.cmd.Start(); err != nil {
		b.t.Fatalf("starting mosquitto: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(b.port), 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("mosquitto did not listen on %d", b.port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *broker) kill() {
	if b.cmd != nil && b.cmd.Process != nil {
		_ = b.cmd.Process.Kill()
		_ = b.cmd.Wait()
		b.cmd = nil
	}
}

// subscriber collects what is published on topic, in arrival order.
type subscriber struct {
	mu   sync.Mutex
	msgs []*paho.Publish
	cl   *paho.Client
}

func subscribe(t testing.TB, port int, topic string, qos byte, connect func(*paho.Connect)) *subscriber {
	conn, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	s := &subscriber{}
	s.cl = paho.NewClient(paho.ClientConfig{Conn: conn, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(pr paho.PublishReceived) (bool, error) {
			s.mu.Lock()
			s.msgs = append(s.msgs, pr.Packet)
			s.mu.Unlock()
			return true, nil
		}}})
	cp := &paho.Connect{ClientID: fmt.Sprintf("sub-%d", time.Now().UnixNano()), CleanStart: true, KeepAlive: 30}
	if connect != nil {
		connect(cp)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.cl.Connect(ctx, cp); err != nil {
		t.Fatal(err)
	}
	if _, err := s.cl.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: qos}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.cl.Disconnect(&paho.Disconnect{}) })
	return s
}

func (s *subscriber) got() []*paho.Publish {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*paho.Publish(nil), s.msgs...)
}

func (s *subscriber) waitFor(t testing.TB, n int) []*paho.Publish {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if m := s.got(); len(m) >= n {
			return m
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("subscriber got %d of %d messages", len(s.got()), n)
	return nil
}
