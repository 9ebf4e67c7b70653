package main

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
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/internal/testenv"
)

func TestMQTTModeEndToEnd(t *testing.T) {
	bin := testenv.LookPath(t, "mosquitto", "apt-get install mosquitto (scripts/test-deps.sh)", "/usr/sbin/mosquitto")
	port := freePort(t)
	conf := filepath.Join(t.TempDir(), "m.conf")
	cfg := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n", port)
	if os.Geteuid() == 0 {
		cfg = "user root\n" + cfg
	}
	require.NoError(t, os.WriteFile(conf, []byte(cfg), 0o600))
	broker := exec.Command(bin, "-c", conf)
	require.NoError(t, broker.Start())
	defer func() { _ = broker.Process.Kill(); _ = broker.Wait() }()
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 10*time.Second, 20*time.Millisecond)

	conn, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	require.NoError(t, err)
	var mu sync.Mutex
	var got []string
	sub := paho.NewClient(paho.ClientConfig{Conn: conn, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(pr paho.PublishReceived) (bool, error) {
			mu.Lock()
			got = append(got, string(pr.Packet.Payload))
			mu.Unlock()
			return true, nil
		}}})
	ctx := context.Background()
	_, err = sub.Connect(ctx, &paho.Connect{ClientID: "e2e-sub", CleanStart: true, KeepAlive: 30})
	require.NoError(t, err)
	_, err = sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "edge/events", QoS: 1}}})
	require.NoError(t, err)

	e := newEnv(t, 120)
	r := runBin(t, e.vars(), "--edge_mode", "mqtt", "-m", "127.0.0.1", "-q", strconv.Itoa(port), "--mqtt_qos", "1",
		"--edge_topic", "edge/events", "--state", e.state("json"))
	require.Equal(t, 0, r.code, r.stderr)
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 120 }, 10*time.Second, 10*time.Millisecond)

	// A broker that is down: exit 1, fast.
	r = runBin(t, e.vars(), "--mode", "mqtt", "-m", "127.0.0.1", "-q", strconv.Itoa(freePort(t)), "--topic", "t", "--state", e.state("json"),
		"--mqtt-connect-timeout", "2s")
	assert.Equal(t, 1, r.code, r.stderr)
}
