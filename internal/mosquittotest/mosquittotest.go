// Package mosquittotest runs a real mosquitto broker for tests: on a free
// loopback port, with a generated config, killed at the end of the test;
// and a subscriber that records what arrives.
package mosquittotest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/edgepoll/edgepoll/internal/testenv"
)

// Broker is a real mosquitto started by the test on a loopback port.
type Broker struct {
	t    testing.TB
	bin  string
	conf string
	Port int
	mu   sync.Mutex // guards cmd: tests kill from one goroutine, restart from another
	cmd  *exec.Cmd
	logs testenv.SyncBuffer
}

// Start writes a config (a listener plus extra lines) and starts mosquitto.
func Start(t testing.TB, extra string) *Broker {
	bin := testenv.LookPath(t, "mosquitto", "apt-get install mosquitto (scripts/test-deps.sh)", "/usr/sbin/mosquitto")
	b := &Broker{t: t, bin: bin, Port: testenv.FreePort(t)}
	dir := t.TempDir()
	b.conf = filepath.Join(dir, "mosquitto.conf")
	// max_queued_messages 0: the test subscribers must not lose QoS 1
	// messages to mosquitto's default per-client queue limit of 1000.
	conf := fmt.Sprintf("listener %d 127.0.0.1\npersistence false\nmax_queued_messages 0\nlog_dest stderr\nlog_type error\n%s\n", b.Port, extra)
	if os.Geteuid() == 0 {
		// As root, mosquitto drops to its own user, which cannot read the
		// test's private temp files: stay root (tests only).
		conf = "user root\n" + conf
	}
	if err := os.WriteFile(b.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	b.Restart()
	t.Cleanup(func() {
		b.Kill()
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", b.logs.String())
		}
	})
	return b
}

// Restart starts the broker (again) on the same port and config.
func (b *Broker) Restart() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cmd = exec.Command(b.bin, "-c", b.conf)
	b.cmd.Stdout, b.cmd.Stderr = &b.logs, &b.logs
	if err := b.cmd.Start(); err != nil {
		b.t.Fatalf("starting mosquitto: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(b.Port), 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("mosquitto did not listen on %d", b.Port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops the broker with SIGKILL.
func (b *Broker) Kill() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd != nil && b.cmd.Process != nil {
		_ = b.cmd.Process.Kill()
		_ = b.cmd.Wait()
		b.cmd = nil
	}
}

// Freeze stops the broker with SIGSTOP: connections stay open, nothing is
// answered, until thaw (SIGCONT).
func (b *Broker) Freeze() (thaw func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.cmd.Process
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		b.t.Fatalf("stopping mosquitto: %v", err)
	}
	var once sync.Once
	return func() { once.Do(func() { _ = p.Signal(syscall.SIGCONT) }) }
}

// Subscriber collects what is published on a topic, in arrival order.
type Subscriber struct {
	mu   sync.Mutex
	msgs []*paho.Publish
	cl   *paho.Client
}

// Subscribe connects a subscriber to topic on the broker at port.
func Subscribe(t testing.TB, port int, topic string, qos byte) *Subscriber {
	conn, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	s := &Subscriber{}
	s.cl = paho.NewClient(paho.ClientConfig{Conn: conn, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(pr paho.PublishReceived) (bool, error) {
			s.mu.Lock()
			s.msgs = append(s.msgs, pr.Packet)
			s.mu.Unlock()
			return true, nil
		}}})
	cp := &paho.Connect{ClientID: fmt.Sprintf("sub-%d", time.Now().UnixNano()), CleanStart: true, KeepAlive: 30}
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

// Got returns what arrived so far.
func (s *Subscriber) Got() []*paho.Publish {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*paho.Publish(nil), s.msgs...)
}

// WaitFor waits until n messages arrived and returns them.
func (s *Subscriber) WaitFor(t testing.TB, n int) []*paho.Publish {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if m := s.Got(); len(m) >= n {
			return m
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("subscriber got %d of %d messages", len(s.Got()), n)
	return nil
}
