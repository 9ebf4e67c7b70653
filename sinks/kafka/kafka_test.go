package kafka

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"sort"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/edgepoll/edgepoll/internal/testcerts"
	"github.com/edgepoll/edgepoll/internal/testenv"
	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/sinks/sinktest"
)

const topic = "edge-events"

func cluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(3, topic)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// consume reads n records back from the topic.
func consume(t *testing.T, c *kfake.Cluster, n int, extra ...kgo.Opt) []*kgo.Record {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100 * time.Millisecond)}, extra...)...)
	require.NoError(t, err)
	defer cl.Close()
	var out []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "got %d of %d records", len(out), n)
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

func newSink(t testing.TB, cfg Config) *Sink {
	s, err := New(cfg, nil)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func TestPipelinedDeliveryExactBytesKeysHeadersOrder(t *testing.T) {
	c := cluster(t)
	s := newSink(t, Config{Brokers: c.ListenAddrs(), Topic: topic})
	evs := sinktest.Events(1000)
	evs = append(evs,
		poll.NewEvent(1001, []byte(`{"eventType":"alert-created","big":123456789012345678901234567890,"u":"Grüße 🚨 \"q\""}`)), // no alert id
		poll.NewEvent(1002, []byte(`{"id":4711,"eventType":"alert-resolved"}`)))                                               // numeric alert id
	errs := sinktest.Send(t, s, evs)
	require.Len(t, errs, len(evs))
	for i, err := range errs {
		require.NoError(t, err, "item %d", i)
	}
	recs := consume(t, c, len(evs))
	byID := map[string]*kgo.Record{}
	perKey := map[string][]int{}
	partOfKey := map[string]int32{}
	for _, r := range recs {
		h := map[string]string{}
		for _, kv := range r.Headers {
			h[kv.Key] = string(kv.Value)
		}
		id := h["X-ilert-Edge-Item-Id"]
		require.NotContains(t, byID, id, "no duplicates")
		byID[id] = r
		n, _ := strconv.Atoi(id)
		perKey[string(r.Key)] = append(perKey[string(r.Key)], n)
		if p, ok := partOfKey[string(r.Key)]; ok {
			assert.Equal(t, p, r.Partition, "one key, one partition")
		}
		partOfKey[string(r.Key)] = r.Partition
	}
	for i, ev := range evs {
		r := byID[ev.ItemID()]
		require.NotNil(t, r, "item %d", i+1)
		assert.Equal(t, string(ev.Payload), string(r.Value), "value bytes unchanged")
	}
	assert.Equal(t, "1001", string(byID["1001"].Key), "no alert id: the edge item id is the key")
	assert.Equal(t, "4711", string(byID["1002"].Key))
	assert.Equal(t, "100", string(byID["1"].Key))
	for k, ids := range perKey {
		assert.True(t, sort.IntsAreSorted(ids), "key %s in order: %v", k, ids)
	}
	parts := map[int32]bool{}
	for _, p := range partOfKey {
		parts[p] = true
	}
	assert.Len(t, parts, 3, "keys spread over all partitions")
}

func TestTransientProduceErrorRetriedInsideClient(t *testing.T) {
	c := cluster(t)
	c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: kerr.NotEnoughReplicas, Count: 1})
	s := newSink(t, Config{Brokers: c.ListenAddrs(), Topic: topic})
	evs := sinktest.Events(200)
	for i, err := range sinktest.Send(t, s, evs) {
		require.NoError(t, err, "item %d", i)
	}
	recs := consume(t, c, 200)
	seen := map[string]bool{}
	for _, r := range recs {
		id := string(r.Headers[0].Value)
		assert.False(t, seen[id], "idempotent: no duplicate of %s", id)
		seen[id] = true
	}
	assert.Len(t, seen, 200)
}

// A partition that keeps failing: the cycle's cursor stops before its first
// item, nothing is lost across cycles, and no key is reordered.
func TestPersistentPartitionFailureThroughTheCycle(t *testing.T) {
	c := cluster(t)
	s := newSink(t, Config{Brokers: c.ListenAddrs(), Topic: topic, DeliveryTimeout: 5 * time.Second})
	cycle, _ := sinktest.Cycle(t, s, 300)

	h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Partitions: []int32{1}, Err: kerr.TopicAuthorizationFailed, Count: -1})
	sum, err := cycle.Run(context.Background(), sinktest.Invocation)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "kafka_")
	assert.Less(t, sum.Cursor, int64(300))
	assert.Greater(t, sum.Delivered, 0, "a prefix before the first item of partition 1 was delivered")
	h.Remove()
	sum2, err := cycle.Run(context.Background(), sinktest.Invocation)
	require.NoError(t, err)
	assert.Equal(t, int64(300), sum2.Cursor)

	recs := consume(t, c, 300)
	firstSeen := map[int]bool{}
	lastPerKey := map[string]int{}
	for _, r := range recs {
		id, _ := strconv.Atoi(string(r.Headers[0].Value))
		if firstSeen[id] {
			continue // a duplicate from the retried suffix: allowed
		}
		firstSeen[id] = true
		assert.Greater(t, id, lastPerKey[string(r.Key)], "key %s reordered", r.Key)
		lastPerKey[string(r.Key)] = id
	}
	for id := 1; id <= 300; id++ {
		assert.True(t, firstSeen[id], "item %d lost", id)
	}
}

func TestPermanentErrorIsSkippable(t *testing.T) {
	c := cluster(t)
	c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: kerr.MessageTooLarge, Count: -1})
	s := newSink(t, Config{Brokers: c.ListenAddrs(), Topic: topic})
	errs := sinktest.Send(t, s, sinktest.Events(3))
	for _, err := range errs {
		require.Error(t, err)
		assert.True(t, poll.IsPermanent(err), "%v", err)
	}
}

func TestUnreachableBrokersFailInBoundedTime(t *testing.T) {
	addr := testenv.RefusedAddr(t)
	s := newSink(t, Config{Brokers: []string{addr}, Topic: topic, DeliveryTimeout: 2 * time.Second})
	start := time.Now()
	errs := sinktest.Send(t, s, sinktest.Events(5))
	assert.Less(t, time.Since(start), 10*time.Second)
	require.Len(t, errs, 5)
	for _, err := range errs {
		require.Error(t, err)
		assert.False(t, poll.IsPermanent(err))
	}
}

func TestSASL(t *testing.T) {
	for _, mech := range []string{"plain", "scram-sha-256", "scram-sha-512"} {
		t.Run(mech, func(t *testing.T) {
			kmech := map[string]string{"plain": "PLAIN", "scram-sha-256": "SCRAM-SHA-256", "scram-sha-512": "SCRAM-SHA-512"}[mech]
			c := cluster(t, kfake.EnableSASL(), kfake.Superuser(kmech, "edgepoll", "right-Pass"))
			s := newSink(t, Config{Brokers: c.ListenAddrs(), Topic: topic, SASLMechanism: mech, Username: "edgepoll", Password: "right-Pass"})
			for _, err := range sinktest.Send(t, s, sinktest.Events(3)) {
				require.NoError(t, err)
			}
			bad := newSink(t, Config{Brokers: c.ListenAddrs(), Topic: topic, SASLMechanism: mech, Username: "edgepoll",
				Password: "wrong-Pass", DeliveryTimeout: 2 * time.Second})
			start := time.Now()
			for _, err := range sinktest.Send(t, bad, sinktest.Events(2)) {
				require.Error(t, err)
				assert.False(t, poll.IsPermanent(err))
				assert.NotContains(t, err.Error(), "wrong-Pass")
			}
			assert.Less(t, time.Since(start), 10*time.Second)
		})
	}
}

func TestTLS(t *testing.T) {
	certs := testcerts.Generate(t, t.TempDir())
	c := cluster(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{certs.Server}}))
	s := newSink(t, Config{Brokers: c.ListenAddrs(), Topic: topic, TLS: true, CAFile: certs.CAFile})
	for _, err := range sinktest.Send(t, s, sinktest.Events(3)) {
		require.NoError(t, err)
	}
	// Without the CA, the server certificate is not trusted.
	bad := newSink(t, Config{Brokers: c.ListenAddrs(), Topic: topic, TLS: true, DeliveryTimeout: 2 * time.Second})
	for _, err := range sinktest.Send(t, bad, sinktest.Events(1)) {
		require.Error(t, err)
	}
}

func TestConfigErrors(t *testing.T) {
	for field, cfg := range map[string]Config{
		"kafka-brokers":        {Topic: "t"},
		"topic":                {Brokers: []string{"h:1"}},
		"kafka-sasl-mechanism": {Brokers: []string{"h:1"}, Topic: "t", SASLMechanism: "gssapi", Username: "u", Password: "p"},
		"kafka-ca":             {Brokers: []string{"h:1"}, Topic: "t", CAFile: "/nonexistent"},
		"kafka-cert":           {Brokers: []string{"h:1"}, Topic: "t", TLS: true, CertFile: "/x"},
	} {
		_, err := New(cfg, nil)
		var ce *poll.ConfigError
		require.ErrorAs(t, err, &ce, field)
		assert.Equal(t, field, ce.Field)
	}
	_, err := New(Config{Brokers: []string{"h:1"}, Topic: "t", SASLMechanism: "plain"}, nil)
	var ce *poll.ConfigError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "kafka-sasl-mechanism", ce.Field, "SASL without user and password")
	_, err = New(Config{Brokers: []string{"nohost"}, Topic: "t"}, nil)
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "kafka-brokers", ce.Field)
	_, err = New(Config{Brokers: []string{"h:70000"}, Topic: "t"}, nil)
	require.ErrorAs(t, err, &ce, "the port range is checked by the sink itself too (one set of rules)")
	assert.Equal(t, "kafka-brokers", ce.Field)
}

// BenchmarkKafka: 1000 records of ~1 KiB against kfake, in one run: this
// sink's pipelined Send, (a) one synchronous produce per record (how the
// reference agent delivers), (b) the raw franz-go async producer.
func BenchmarkKafka(b *testing.B) {
	payloads := sinktest.Sized(1000, 1024, 50)
	c := cluster(b)
	b.Run("a-sync-per-record", func(b *testing.B) {
		cl, _ := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(topic))
		defer cl.Close()
		for i := 0; i < b.N; i++ {
			for _, ev := range payloads {
				if err := cl.ProduceSync(context.Background(), Record(ev)).FirstErr(); err != nil {
					b.Fatal(err)
				}
			}
		}
		sinktest.ItemsPerSecond(b, len(payloads))
	})
	b.Run("b-raw-async", func(b *testing.B) {
		cl, _ := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0))
		defer cl.Close()
		for i := 0; i < b.N; i++ {
			for _, ev := range payloads {
				cl.Produce(context.Background(), Record(ev), nil)
			}
			if err := cl.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		sinktest.ItemsPerSecond(b, len(payloads))
	})
	b.Run("edgepoll-sink", func(b *testing.B) {
		sinktest.Bench(b, newSink(b, Config{Brokers: c.ListenAddrs(), Topic: topic}), payloads)
	})
}

// A failure names its underlying cause, as the bounded reason and in the
// message, instead of one "not acknowledged in time" for every cause.
func TestFailureNamesTheCause(t *testing.T) {
	refused := testenv.RefusedAddr(t)
	notKafka, err := net.Listen("tcp", "127.0.0.1:0") // answers like an HTTP server
	require.NoError(t, err)
	t.Cleanup(func() { notKafka.Close() })
	go func() {
		for {
			c, err := notKafka.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	sasl := cluster(t, kfake.EnableSASL(), kfake.Superuser("PLAIN", "edgepoll", "right-Pass"))
	plainCluster := cluster(t)
	certs := testcerts.Generate(t, t.TempDir())
	tlsCluster := cluster(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{certs.Server}}))
	for _, tc := range []struct {
		name, reason, msg string
		cfg               Config
	}{
		{"refused port", "connection_refused", "connection refused", Config{Brokers: []string{refused}}},
		{"not a Kafka port", "not_kafka", "HTTP", Config{Brokers: []string{notKafka.Addr().String()}}},
		{"wrong SASL password", "sasl_auth_failed", "SASL authentication failed",
			Config{Brokers: sasl.ListenAddrs(), SASLMechanism: "plain", Username: "edgepoll", Password: "wrong-Pass"}},
		{"unknown topic", "kafka_unknown_topic_or_partition", "UNKNOWN_TOPIC_OR_PARTITION", Config{Brokers: plainCluster.ListenAddrs(), Topic: "no-such-topic"}},
		{"untrusted certificate", "tls", "certificate", Config{Brokers: tlsCluster.ListenAddrs(), TLS: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if cfg.Topic == "" {
				cfg.Topic = topic
			}
			cfg.DeliveryTimeout = 2 * time.Second
			errs := sinktest.Send(t, newSink(t, cfg), sinktest.Events(2))
			require.Len(t, errs, 2)
			for _, err := range errs {
				require.Error(t, err)
				assert.False(t, poll.IsPermanent(err))
				assert.Equal(t, tc.reason, poll.ReasonOf(err), "%v", err)
				assert.Contains(t, err.Error(), tc.msg)
				assert.NotContains(t, err.Error(), "wrong-Pass")
			}
		})
	}
}

// A slow store does not slow the pipelined drain: every Save is held until
// its whole batch was acknowledged, and each batch costs one more Save.
func TestSlowStoreDoesNotSlowTheDrain(t *testing.T) {
	c := cluster(t)
	sinktest.SlowStoreDrain(t, newSink(t, Config{Brokers: c.ListenAddrs(), Topic: topic}), 300)
}

// BenchmarkKafkaCycle: a whole cycle (lease, 10 polls, deliveries, cursor
// saves, release) draining 1000 records of ~1 KiB from the fake ilert API to
// kfake, with SQLite or DynamoDB (dynalite) state, against a bare loop that
// polls its own fake API the same way and produces each page with a raw
// franz-go async producer (acks=all, idempotent, keyed by alert id, one
// flush per page), no state: paired in one benchmark (ratio = edgepoll /
// bare loop). Secondary figure: the raw producer alone producing and
// flushing the 1000 records, no polling (ratio-vs-raw-producer-only).
// cycle-without-kafka pairs a cycle whose sink sends nothing (SQLite)
// with the bare loop producing nothing: what the cycle costs over polling.
func BenchmarkKafkaCycle(b *testing.B) {
	evs := sinktest.Sized(1000, 1024, 50)
	payloads := sinktest.Payloads(evs)
	c := cluster(b)
	raw, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	require.NoError(b, err)
	defer raw.Close()
	produce := func(recs []*kgo.Record) {
		var failed atomic.Pointer[error]
		for _, r := range recs {
			raw.Produce(context.Background(), r, func(_ *kgo.Record, err error) {
				if err != nil {
					failed.CompareAndSwap(nil, &err)
				}
			})
		}
		if err := raw.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
		if err := failed.Load(); err != nil {
			b.Fatal(*err)
		}
	}
	producerOnly := sinktest.Reference{Name: "raw-producer-only", Run: func(int) time.Duration {
		recs := make([]*kgo.Record, len(evs))
		for i, ev := range evs {
			recs[i] = &kgo.Record{Key: []byte(ev.AlertID), Value: ev.Payload}
		}
		start := time.Now()
		produce(recs)
		return time.Since(start)
	}}
	bareLoop := func(b *testing.B) func(int) time.Duration {
		return sinktest.PlainDrain(b, payloads, func(page []sinktest.PlainItem) {
			recs := make([]*kgo.Record, len(page))
			for i, it := range page {
				var p struct {
					ID string `json:"id"`
				}
				if err := json.Unmarshal(it.Payload, &p); err != nil {
					b.Fatal(err)
				}
				recs[i] = &kgo.Record{Key: []byte(p.ID), Value: it.Payload}
			}
			produce(recs)
		})
	}
	b.Run("cycle-without-kafka", func(b *testing.B) {
		sinktest.Paired(b, len(evs), sinktest.PlainDrain(b, payloads, func([]sinktest.PlainItem) {}),
			sinktest.CycleDrain(b, sinktest.Discard{}, nil, payloads))
	})
	for _, state := range []string{"sqlite", "dynamodb"} {
		b.Run(state, func(b *testing.B) {
			var store poll.Store
			if state == "dynamodb" {
				store = sinktest.Dynamo(b)
			}
			s := newSink(b, Config{Brokers: c.ListenAddrs(), Topic: topic})
			producerOnly.Run(0) // warm both producers' connections
			sinktest.Send(b, s, evs[:1])
			sinktest.Paired(b, len(evs), bareLoop(b), sinktest.CycleDrain(b, s, store, payloads), producerOnly)
		})
	}
}

// One record too large for the broker refuses its whole produce batch: the
// sink produces that batch's records again one at a time, so only the
// oversize record is refused (permanent) and its neighbours arrive.
func TestOversizeRecordRefusesOnlyItself(t *testing.T) {
	c := cluster(t, kfake.SeedTopics(1, "one"), kfake.BrokerConfigs(map[string]string{"message.max.bytes": "4096"}))
	s := newSink(t, Config{Brokers: c.ListenAddrs(), Topic: "one"})
	evs := sinktest.Events(8)
	noise := make([]byte, 12000) // incompressible: the limit applies to the compressed batch
	_, _ = rand.Read(noise)
	evs[3].Payload = []byte(`{"blob":"` + base64.StdEncoding.EncodeToString(noise) + `"}`)
	errs := sinktest.Send(t, s, evs)
	for i, err := range errs {
		if i == 3 {
			require.Error(t, err)
			assert.True(t, poll.IsPermanent(err), "%v", err)
			continue
		}
		assert.NoError(t, err, "item %d", i)
	}
}
