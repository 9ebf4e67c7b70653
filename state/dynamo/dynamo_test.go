package dynamo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/internal/dynalitetest"
	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/state"
	"github.com/edgepoll/edgepoll/state/contract"
)

var tables atomic.Int32

// One dynalite for the package; a fresh table per test.
func TestMain(m *testing.M) {
	code := m.Run()
	dynalitetest.StopShared()
	os.Exit(code)
}

func srv(t testing.TB) *dynalitetest.Server { return dynalitetest.Shared(t) }

func freshTable(t testing.TB) string {
	name := fmt.Sprintf("edgepoll-%d", tables.Add(1))
	srv(t).CreateTable(t, name)
	return name
}

func open(t testing.TB, table string, opt Options) *Store {
	opt.Client = srv(t).StoreClient()
	s, err := Open(context.Background(), table, opt, nil)
	require.NoError(t, err)
	return s
}

func TestContract(t *testing.T) {
	const ttl = 1500 * time.Millisecond
	contract.Run(t, contract.Harness{
		Fresh: func(t *testing.T) string { return freshTable(t) },
		Open: func(t *testing.T, loc string) poll.Store {
			return open(t, loc, Options{LeaseTTL: ttl, RenewEvery: ttl / 4})
		},
		OpenStale: func(t *testing.T, loc string) poll.Store {
			return open(t, loc, Options{LeaseTTL: ttl, RenewEvery: -1})
		},
		LeaseTTL: ttl,
	})
}

func TestRenewalKeepsLeasePastTTL(t *testing.T) {
	table := freshTable(t)
	a := open(t, table, Options{LeaseTTL: 600 * time.Millisecond, RenewEvery: 150 * time.Millisecond})
	b := open(t, table, Options{LeaseTTL: 600 * time.Millisecond})
	l, err := a.Acquire(context.Background(), "c", "long-cycle")
	require.NoError(t, err)
	time.Sleep(1500 * time.Millisecond) // 2.5 TTLs
	_, err = b.Acquire(context.Background(), "c", "other")
	assert.ErrorIs(t, err, poll.ErrLeaseHeld)
	require.NoError(t, l.Save(context.Background(), poll.Position{Cursor: 5}))
	require.NoError(t, l.Release(context.Background()))
	l2, err := b.Acquire(context.Background(), "c", "other")
	require.NoError(t, err)
	c, _, _ := l2.Load(context.Background())
	assert.Equal(t, int64(5), c.Cursor)
	_ = l2.Release(context.Background())
}

func TestConcurrentAcquireAcrossConnections(t *testing.T) {
	table := freshTable(t)
	s := open(t, table, Options{})
	var wg sync.WaitGroup
	var wins atomic.Int32
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := open(t, table, Options{}).Acquire(context.Background(), "shared", fmt.Sprint("r", i))
			if err == nil {
				wins.Add(1)
				_ = l
			} else if !errors.Is(err, poll.ErrLeaseHeld) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int32(1), wins.Load())
	l, err := s.Acquire(context.Background(), "other", "x")
	require.NoError(t, err)
	_ = l.Release(context.Background())
}

func TestMissingTableAndServerDown(t *testing.T) {
	_, err := Open(context.Background(), "no-such-table", Options{Client: srv(t).StoreClient()}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no-such-table")

	down := dynalitetest.Start(t)
	c := down.StoreClient()
	down.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err = Open(ctx, "t", Options{Client: c}, nil)
	assert.Error(t, err)
	assert.Less(t, time.Since(start), 10*time.Second)
}

// BenchmarkSave: a fenced, monotonic cursor Save against dynalite vs a raw
// PutItem of the same item in the same run.
func BenchmarkSave(b *testing.B) {
	table := freshTable(b)
	b.Run("baseline-raw-PutItem", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			_, err := srv(b).Client.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(table),
				Item: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "raw"},
					"cursor": &types.AttributeValueMemberN{Value: strconv.Itoa(i)}}})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("dynamo-save", func(b *testing.B) {
		l, err := open(b, table, Options{}).Acquire(context.Background(), "bench", "b")
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := l.Save(context.Background(), poll.Position{Cursor: int64(i + 1)}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// A stale owner whose own clock says its lease is still valid (clock skew, a
// frozen VM) is refused by the server-side fence, not by its own check.
func TestServerFencesStaleOwnerWithSkewedClock(t *testing.T) {
	table := freshTable(t)
	skewed := open(t, table, Options{LeaseTTL: time.Minute, RenewEvery: -1, Now: func() time.Time { return time.Now().Add(-time.Hour) }})
	fresh := open(t, table, Options{LeaseTTL: time.Minute})
	stale, err := skewed.Acquire(context.Background(), "c", "stale")
	require.NoError(t, err)
	require.NoError(t, stale.Save(context.Background(), poll.Position{Cursor: 10}))
	// Its lease expired an hour ago in real time: taken over.
	l, err := fresh.Acquire(context.Background(), "c", "fresh")
	require.NoError(t, err)
	defer l.Release(context.Background())
	err = stale.Save(context.Background(), poll.Position{Cursor: 50})
	require.ErrorIs(t, err, poll.ErrLeaseLost, "fenced by the newer generation on the cursor item")
	c, _, err := l.Load(context.Background())
	require.NoError(t, err)
	assert.Equal(t, int64(10), c.Cursor)
	require.NoError(t, l.Save(context.Background(), poll.Position{Cursor: 11}))
	require.NoError(t, stale.Release(context.Background()))
	_, err = skewed.Acquire(context.Background(), "c", "third")
	assert.ErrorIs(t, err, poll.ErrLeaseHeld, "the stale Release did not free the fresh lease")
}

// A holder that stops renewing (killed: no release, no renewal) is reported
// as stalled once it missed two renewals, with its last renewal, and its
// lease is taken over once it expires; a live holder is never stalled.
func TestStalledHolder(t *testing.T) {
	table := freshTable(t)
	const ttl = 900 * time.Millisecond
	dead := open(t, table, Options{LeaseTTL: ttl, RenewEvery: -1})
	live := open(t, table, Options{LeaseTTL: ttl, RenewEvery: ttl / 3})
	l, err := live.Acquire(context.Background(), "live", "alive")
	require.NoError(t, err)
	defer l.Release(context.Background())
	_, err = dead.Acquire(context.Background(), "c", "killed-run")
	require.NoError(t, err)
	// renew_ms of a frozen holder is its configured interval: store one
	// that says "every 300 ms" as a killed renewing holder would have.
	_, err = srv(t).Client.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
		TableName: aws.String(table), Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "lease#c"}},
		UpdateExpression:          aws.String("SET renew_ms = :r"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":r": &types.AttributeValueMemberN{Value: "300"}},
	})
	require.NoError(t, err)
	info, err := live.Inspect(context.Background(), "c")
	require.NoError(t, err)
	assert.True(t, info.Lease.Held)
	assert.False(t, info.Lease.Stalled, "just acquired")
	assert.False(t, info.Lease.RenewedAt.IsZero())
	require.Eventually(t, func() bool {
		info, err = live.Inspect(context.Background(), "c")
		return err == nil && info.Lease.Stalled
	}, 5*time.Second, 20*time.Millisecond)
	assert.True(t, info.Lease.Held, "stalled but not yet expired")
	assert.Equal(t, "killed-run", info.Lease.Holder)
	li, err := live.Inspect(context.Background(), "live")
	require.NoError(t, err)
	assert.True(t, li.Lease.Held)
	assert.False(t, li.Lease.Stalled, "a renewing holder is not stalled")
	require.Eventually(t, func() bool {
		l2, err := live.Acquire(context.Background(), "c", "next")
		if err == nil {
			_ = l2.Release(context.Background())
		}
		return err == nil
	}, 5*time.Second, 50*time.Millisecond, "taken over once expired")
}

func TestDefaultLeaseIsShort(t *testing.T) {
	s := open(t, freshTable(t), Options{})
	assert.Equal(t, 15*time.Second, s.opt.LeaseTTL)
	assert.Equal(t, 5*time.Second, s.opt.RenewEvery)
}

func TestDeadLetterContract(t *testing.T) {
	contract.RunDeadLetter(t, contract.DeadLetterHarness{
		Fresh: func(t *testing.T) string { return freshTable(t) },
		Open: func(t *testing.T, table string) state.DeadLetter {
			d, err := OpenDeadLetter(context.Background(), table, srv(t).StoreClient())
			if err != nil {
				t.Fatal(err)
			}
			return d
		},
	})
}

// A write whose condition fails is the SDK's typed error, recognised by
// type (errors.As), not by a message.
func TestConditionFailureIsTyped(t *testing.T) {
	s := open(t, freshTable(t), Options{})
	err := s.update(context.Background(), update{
		Key:                       key("cursor#typed"),
		UpdateExpression:          "SET gen = :g",
		ConditionExpression:       "attribute_exists(gen)",
		ExpressionAttributeValues: Item{":g": Num(1)},
	})
	var ccf *types.ConditionalCheckFailedException
	require.ErrorAs(t, err, &ccf)
	assert.True(t, isConditionFailed(err))
	assert.False(t, isConditionFailed(errors.New("ConditionalCheckFailedException")), "a message is not the type")
}
