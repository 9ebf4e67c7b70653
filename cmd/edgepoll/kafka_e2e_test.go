package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
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
