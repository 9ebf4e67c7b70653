package main

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/internal/mosquittotest"
)

func TestMQTTModeEndToEnd(t *testing.T) {
	b := mosquittotest.Start(t, "allow_anonymous true")
	sub := mosquittotest.Subscribe(t, b.Port, "edge/events", 1)
	e := newEnv(t, 120)
	r := runBin(t, e.vars(), "--edge_mode", "mqtt", "-m", "127.0.0.1", "-q", strconv.Itoa(b.Port), "--mqtt_qos", "1",
		"--edge_topic", "edge/events", "--state", e.state("json"))
	require.Equal(t, 0, r.code, r.stderr)
	msgs := sub.WaitFor(t, 120)
	checkAtLeastOnceInOrder(t, itemIDs(t, msgs), 120, 0)

	// A broker that is down: exit 1, fast.
	start := time.Now()
	r = runBin(t, e.vars(), "--mode", "mqtt", "-m", "127.0.0.1", "-q", strconv.Itoa(mosquittotest.FreePort(t)), "--topic", "t",
		"--state", e.state("json"), "--mqtt-connect-timeout", "2s")
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Less(t, time.Since(start), 10*time.Second)
}
