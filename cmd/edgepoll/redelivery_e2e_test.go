package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgepoll/edgepoll/internal/dynalitetest"
	"github.com/edgepoll/edgepoll/internal/mosquittotest"
	"github.com/edgepoll/edgepoll/poll"
)

// The redelivery bounds after a SIGKILL that the README states ("Delivery
// guarantees").
const (
	boundSequentialLocal = 1               // HTTP, script, stdout with sqlite/json: the item in flight
	boundMQTTWindow      = 20              // MQTT QoS 1/2 with sqlite/json: the broker's Receive Maximum (set below)
	boundBatch           = poll.BatchLimit // Kafka; any target with DynamoDB state: one batch
)

// killDrain runs the binary once per threshold in at, SIGKILLing it as soon
// as progress() reached the threshold (or after a generous 30 s), and
// before each next run calls afterKill (if set); then it runs the binary to
// the end, which must exit 0. It returns the number of kills.
func killDrain(t *testing.T, env, args []string, progress func() int, at []int, afterKill func()) int {
	t.Helper()
	for _, n := range at {
		cmd := exec.Command(edgepollBin(t), args...)
		cmd.Env = env
		stderr, _ := cmd.StderrPipe()
		require.NoError(t, cmd.Start())
		go func() { _, _ = io.Copy(io.Discard, bufio.NewReader(stderr)) }()
		deadline := time.Now().Add(30 * time.Second)
		for progress() < n && time.Now().Before(deadline) {
			time.Sleep(200 * time.Microsecond)
		}
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
		if afterKill != nil {
			afterKill()
		}
	}
	r := runBin(t, env, args...)
	require.Equal(t, 0, r.code, r.stderr)
	return len(at)
}

// redeliveredAtRestarts splits ids, in the order one target received them
// from runs that followed each other, where a run restarted (an id not
// above the one before) and returns how many items each restart delivered
// again. A restart that redelivered nothing is not visible, and counts 0.
func redeliveredAtRestarts(ids []int64) []int {
	var out []int
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			out = append(out, int(ids[i-1]-ids[i]+1))
		}
	}
	return out
}

// expireDynamoLease makes the lease of a killed run expire at once, as its
// TTL would, so the next run need not wait it out.
func expireDynamoLease(t *testing.T, ddb *dynalitetest.Server, table string) {
	_, err := ddb.Client.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
		TableName:                 aws.String(table),
		Key:                       map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "lease#" + poll.ConnectionID(e2eKey)}},
		UpdateExpression:          aws.String("SET expires_at = :z"),
		ConditionExpression:       aws.String("attribute_exists(pk)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":z": &types.AttributeValueMemberN{Value: "0"}},
	})
	if err != nil && !strings.Contains(err.Error(), "ConditionalCheckFailed") {
		t.Fatal(err)
	}
}

// stateBackend is a state flag value with its environment and what to do
// after a kill.
type stateBackend struct {
	state     string
	env       []string
	afterKill func()
	bound     func(local int) int
}

func backendFor(t *testing.T, e *env, name string) stateBackend {
	if name != "dynamodb" {
		return stateBackend{state: e.state(name), bound: func(local int) int { return local }}
	}
	ddb := dynalitetest.Start(t)
	ddb.CreateTable(t, "edgepoll-state")
	return stateBackend{
		state: "dynamodb:edgepoll-state", env: ddb.Env(),
		afterKill: func() { expireDynamoLease(t, ddb, "edgepoll-state") },
		bound:     func(int) int { return boundBatch },
	}
}

func checkRestarts(t *testing.T, restarts []int, kills, bound int) {
	t.Helper()
	require.LessOrEqual(t, len(restarts), kills, "restarts %v", restarts)
	for _, n := range restarts {
		assert.LessOrEqual(t, n, bound, "items redelivered after one SIGKILL (restarts %v)", restarts)
	}
	t.Logf("redelivered per kill: %v (bound %d)", restarts, bound)
}

// SIGKILL mid-drain with DynamoDB state: nothing is lost, first deliveries
// stay in order, and a kill redelivers at most one batch, although the
// cursor is saved off the delivery path.
func TestSIGKILLWithDynamoDBStateHTTP(t *testing.T) {
	const n = 500
	e := newEnv(t, n)
	b := backendFor(t, e, "dynamodb")
	tg := newTarget(t)
	tg.setDelay(time.Millisecond)
	args := []string{"--mode", "http", "--http-url", tg.srv.URL, "--state", b.state}
	kills := killDrain(t, e.vars(b.env...), args, func() int { return len(tg.got()) }, []int{37, 150, 151, 290, 420}, b.afterKill)
	got := tg.got()
	checkAtLeastOnceInOrder(t, got, n, kills*boundBatch)
	checkRestarts(t, redeliveredAtRestarts(got), kills, boundBatch)
}

// MQTT QoS 1: a SIGKILL redelivers at most the broker's Receive Maximum
// (the publishes in flight) with local state: an acknowledged item is
// reported, and its cursor saved, as soon as its PUBACK is read.
func TestSIGKILLRedeliveryBoundMQTT(t *testing.T) {
	for _, backend := range []string{"json", "dynamodb"} {
		t.Run(backend, func(t *testing.T) {
			const n = 1500
			br := mosquittotest.Start(t, fmt.Sprintf("allow_anonymous true\nmax_inflight_messages %d", boundMQTTWindow))
			sub := mosquittotest.Subscribe(t, br.Port, "edge/events", 1)
			e := newEnv(t, n)
			b := backendFor(t, e, backend)
			args := []string{"--mode", "mqtt", "-m", "127.0.0.1", "-q", strconv.Itoa(br.Port), "--mqtt_qos", "1",
				"--topic", "edge/events", "--state", b.state}
			kills := killDrain(t, e.vars(b.env...), args, func() int { return len(sub.Got()) },
				[]int{90, 400, 401, 750, 1100, 1300}, b.afterKill)
			var ids []int64
			deadline := time.Now().Add(15 * time.Second)
			for {
				ids = itemIDs(t, sub.Got())
				if distinct(ids) >= n || time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			bound := b.bound(boundMQTTWindow)
			checkAtLeastOnceInOrder(t, ids, n, kills*bound)
			checkRestarts(t, redeliveredAtRestarts(ids), kills, bound)
		})
	}
}

func distinct(ids []int64) int {
	seen := map[int64]bool{}
	for _, id := range ids {
		seen[id] = true
	}
	return len(seen)
}

// Kafka: a SIGKILL redelivers at most one batch (the records produced and
// not yet acknowledged). Runs are told apart by their producer id (each
// run's idempotent producer gets its own), in the order of their first
// record's timestamp.
func TestSIGKILLRedeliveryBoundKafka(t *testing.T) {
	for _, backend := range []string{"sqlite", "dynamodb"} {
		t.Run(backend, func(t *testing.T) {
			const n = 1500
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "edge"))
			require.NoError(t, err)
			defer c.Close()
			recs := consumeAll(t, c.ListenAddrs(), "edge")
			e := newEnv(t, n)
			b := backendFor(t, e, backend)
			args := []string{"--mode", "kafka", "--kafka-brokers", strings.Join(c.ListenAddrs(), ","), "--topic", "edge", "--state", b.state}
			kills := killDrain(t, e.vars(b.env...), args, func() int { return len(recs.get()) },
				[]int{90, 400, 401, 750, 1100, 1300}, b.afterKill)

			var got []*kgo.Record
			deadline := time.Now().Add(15 * time.Second)
			for {
				got = recs.get()
				if distinctRecords(got) >= n || time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			require.Equal(t, n, distinctRecords(got), "every item delivered")
			// Per key, first deliveries in order (a partition keeps its order).
			last := map[string]int64{}
			seen := map[int64]bool{}
			for _, r := range got {
				id := recordID(r)
				if seen[id] {
					continue
				}
				seen[id] = true
				assert.Greater(t, id, last[string(r.Key)], "key %s reordered", r.Key)
				last[string(r.Key)] = id
			}
			restarts := redeliveredPerRun(got)
			bound := b.bound(boundBatch)
			require.LessOrEqual(t, len(restarts), kills+1)
			for _, n := range restarts {
				assert.LessOrEqual(t, n, bound, "records redelivered after one SIGKILL (%v)", restarts)
			}
			t.Logf("redelivered per kill: %v (bound %d)", restarts, bound)
		})
	}
}

func recordID(r *kgo.Record) int64 {
	for _, h := range r.Headers {
		if h.Key == "X-ilert-Edge-Item-Id" {
			id, _ := strconv.ParseInt(string(h.Value), 10, 64)
			return id
		}
	}
	return 0
}

func distinctRecords(rs []*kgo.Record) int {
	seen := map[int64]bool{}
	for _, r := range rs {
		seen[recordID(r)] = true
	}
	return len(seen)
}

// redeliveredPerRun groups records by producer id (one per run), orders the
// runs by their first record's timestamp, and returns for each run but the
// last how many of its items a later run delivered again.
func redeliveredPerRun(rs []*kgo.Record) []int {
	type run struct {
		first time.Time
		ids   map[int64]bool
	}
	runs := map[int64]*run{}
	for _, r := range rs {
		ru := runs[r.ProducerID]
		if ru == nil {
			ru = &run{first: r.Timestamp, ids: map[int64]bool{}}
			runs[r.ProducerID] = ru
		}
		if r.Timestamp.Before(ru.first) {
			ru.first = r.Timestamp
		}
		ru.ids[recordID(r)] = true
	}
	ordered := make([]*run, 0, len(runs))
	for _, ru := range runs {
		ordered = append(ordered, ru)
	}
	slices.SortFunc(ordered, func(a, b *run) int { return a.first.Compare(b.first) })
	var out []int
	for i, ru := range ordered[:max(0, len(ordered)-1)] {
		again := 0
		for id := range ru.ids {
			for _, later := range ordered[i+1:] {
				if later.ids[id] {
					again++
					break
				}
			}
		}
		out = append(out, again)
	}
	return out
}

// recordLog is what a background consumer read from a topic so far.
type recordLog struct {
	mu   sync.Mutex
	recs []*kgo.Record
}

func (l *recordLog) get() []*kgo.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*kgo.Record(nil), l.recs...)
}

// consumeAll reads topic from the start in the background until the test
// ends.
func consumeAll(t *testing.T, brokers []string, topic string) *recordLog {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	l := &recordLog{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				l.mu.Lock()
				l.recs = append(l.recs, r)
				l.mu.Unlock()
			})
		}
	}()
	t.Cleanup(func() { cancel(); <-done; cl.Close() })
	return l
}
