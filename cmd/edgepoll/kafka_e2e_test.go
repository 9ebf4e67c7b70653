package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgepoll/edgepoll/internal/testenv"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
)

func TestKafkaModeEndToEnd(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "edge"))
	require.NoError(t, err)
	defer c.Close()
	e := newEnv(t, 250)
	r := runBin(t, e.vars(), "--edge_mode", "kafka", "--kafka_brokers", strings.Join(c.ListenAddrs(), ","), "--edge_topic", "edge",
		"--state", e.state("sqlite"))
	require.Equal(t, 0, r.code, r.stderr)

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("edge"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := map[string]bool{}
	for len(got) < 250 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(rec *kgo.Record) {
			for _, h := range rec.Headers {
				if h.Key == "X-ilert-Edge-Item-Id" {
					assert.False(t, got[string(h.Value)], "duplicate %s", h.Value)
					got[string(h.Value)] = true
				}
			}
		})
	}
	assert.Len(t, got, 250)

	// Unreachable brokers: exit 1 in bounded time, cursor unchanged; the
	// cause is named once at the default log level, not once per item.
	e.api.Push(e2eKey, []byte(`{"id":"1"}`), []byte(`{"id":"2"}`), []byte(`{"id":"3"}`))
	start := time.Now()
	r = runBin(t, e.vars(), "--mode", "kafka", "--kafka-brokers", "127.0.0.1:1", "--topic", "edge", "--state", e.state("sqlite"),
		"--kafka-delivery-timeout", "2s")
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Less(t, time.Since(start), 15*time.Second)
	assert.Equal(t, 1, strings.Count(r.stderr, "connection refused"), r.stderr)
	assert.Contains(t, r.stderr, "(and 2 more items)")
}

// A pipelined target refusing a record for good (too large for the
// broker): only that record is skipped (the broker refuses the whole
// produce batch it was in; its neighbours are produced again on their own
// and arrive), and it is in the dead letter, with the Kafka reason and no
// HTTP status: every item is in the topic or in the dead letter.
func TestKafkaRefusedRecordIsDeadLettered(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "edge"),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": "4096"}))
	require.NoError(t, err)
	defer c.Close()
	e := newEnv(t, 0)
	noise := make([]byte, 12000) // incompressible: the broker limit applies to the compressed batch
	_, _ = rand.Read(noise)
	big := `{"eventType":"alert-created","id":"7","summary":"` + base64.StdEncoding.EncodeToString(noise) + `"}`
	for i := 1; i <= 12; i++ {
		if i == 5 {
			e.api.Push(e2eKey, []byte(big))
			continue
		}
		e.api.Push(e2eKey, ilerttest.AlertEvents(1)...)
	}
	dl := filepath.Join(e.dir, "dead.jsonl")
	r := runBin(t, e.vars(), "--mode", "kafka", "--kafka-brokers", strings.Join(c.ListenAddrs(), ","), "--topic", "edge",
		"--state", e.state("sqlite"), "--dead-letter", "file:"+dl)
	require.Equal(t, 0, r.code, r.stderr)

	where := map[string]string{}
	for _, l := range deadLetters(t, dl) {
		id := string(l["id"])
		where[id] = "dead letter"
		assert.Equal(t, "null", string(l["status"]))
		assert.Contains(t, string(l["reason"]), "kafka_")
		if id == "5" {
			assert.JSONEq(t, big, string(l["payload"]), "the payload, verbatim")
		}
	}
	assert.Equal(t, map[string]string{"5": "dead letter"}, where, "only the record too large on its own")
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("edge"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for len(where) < 12 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(rec *kgo.Record) {
			for _, h := range rec.Headers {
				if h.Key == "X-ilert-Edge-Item-Id" {
					assert.Empty(t, where[string(h.Value)], "item %s both delivered and dead-lettered", h.Value)
					where[string(h.Value)] = "topic"
				}
			}
		})
	}
	assert.Len(t, where, 12, "every item is in the topic or in the dead letter: %v", where)
}

// Brokers that refuse the connection, or an HTTP server's port given as a
// broker, fail the run with the cause as the reason, with the default 30 s
// delivery timeout: the run is given 20 s, so waiting for that timeout
// fails the test.
func TestKafkaWrongBrokersFailFast(t *testing.T) {
	// Mostly waits on timers: runs beside the other parallel tests.
	t.Parallel()
	web := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer web.Close()
	for _, tc := range []struct{ name, broker, reason string }{
		{"refused", "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)), "connection_refused"},
		{"http server", web.Listener.Addr().String(), "not_kafka"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 3)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, edgepollBin(t), "--mode", "kafka", "--kafka-brokers", tc.broker, "--topic", "edge",
				"--state", e.state("sqlite"))
			cmd.Env = e.vars()
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			require.NoError(t, ctx.Err(), "still running after 20s:\n%s", stderr.String())
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee, stderr.String())
			assert.Equal(t, 1, ee.ExitCode(), stderr.String())
			assert.Contains(t, stderr.String(), "delivery failure: "+tc.reason+": ", stderr.String())
		})
	}
}
