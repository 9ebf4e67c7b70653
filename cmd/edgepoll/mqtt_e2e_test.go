package main

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/internal/mosquittotest"
	"github.com/edgepoll/edgepoll/internal/testenv"
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
	r = runBin(t, e.vars(), "--mode", "mqtt", "-m", "127.0.0.1", "-q", strconv.Itoa(testenv.FreePort(t)), "--topic", "t",
		"--state", e.state("json"), "--mqtt-connect-timeout", "2s")
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Less(t, time.Since(start), 10*time.Second)
}

// -n NAME (--mqtt_name) connects as NAME-edge, as the reference agent does:
// the broker's ACL lets only that client id publish on the topic.
func TestMQTTNameIsTheClientID(t *testing.T) {
	acl := filepath.Join(t.TempDir(), "acl")
	require.NoError(t, os.WriteFile(acl, []byte("topic read edge/#\npattern write edge/%c\n"), 0o644))
	b := mosquittotest.Start(t, "allow_anonymous true\nacl_file "+acl)
	sub := mosquittotest.Subscribe(t, b.Port, "edge/#", 1)
	e := newEnv(t, 3)
	r := runBin(t, e.vars(), "--mode", "mqtt", "-m", "127.0.0.1", "-q", strconv.Itoa(b.Port), "--mqtt_qos", "1",
		"-n", "site1", "--topic", "edge/site1-edge", "--state", e.state("json"))
	require.Equal(t, 0, r.code, r.stderr)
	checkAtLeastOnceInOrder(t, itemIDs(t, sub.WaitFor(t, 3)), 3, 0)

	e = newEnv(t, 1)
	r = runBin(t, e.vars(), "--mode", "mqtt", "-m", "127.0.0.1", "-q", strconv.Itoa(b.Port), "--mqtt_qos", "1",
		"--mqtt-client-id", "site1", "--topic", "edge/site1-edge", "--state", e.state("json"))
	assert.Equal(t, 1, r.code, "another client id is refused by the ACL: %s", r.stderr)
	assert.Contains(t, r.stderr, "not authorized")
}
