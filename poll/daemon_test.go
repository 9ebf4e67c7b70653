package poll_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
)

// fakeClock hands every Sleep to the test, which checks the duration and
// lets it end: the schedule is tested exactly, without waiting.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps chan sleepReq
}

type sleepReq struct {
	d    time.Duration
	wake chan bool
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), sleeps: make(chan sleepReq)}
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) bool {
	r := sleepReq{d: d, wake: make(chan bool, 1)}
	select {
	case c.sleeps <- r:
	case <-ctx.Done():
		return false
	}
	select {
	case ok := <-r.wake:
		c.mu.Lock()
		c.now = c.now.Add(d)
		c.mu.Unlock()
		return ok
	case <-ctx.Done():
		return false
	}
}

// next waits for the daemon's next sleep and returns its duration.
func (c *fakeClock) next(t *testing.T) sleepReq {
	t.Helper()
	select {
	case r := <-c.sleeps:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not sleep")
	}
	return sleepReq{}
}

type daemonRig struct {
	f       *fixture
	clock   *fakeClock
	reports chan poll.CycleReport
	stop    context.CancelFunc
	done    chan error
}

func startDaemon(t *testing.T, f *fixture) *daemonRig {
	r := &daemonRig{f: f, clock: newFakeClock(), reports: make(chan poll.CycleReport, 100), done: make(chan error, 1)}
	d := &poll.Daemon{Cycle: f.cycle, Invocation: testInv, Interval: 10 * time.Second, StandbyInterval: 15 * time.Second, Clock: r.clock,
		OnCycle: func(rep poll.CycleReport) { r.reports <- rep }}
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go func() { r.done <- d.Run(ctx, context.Background()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-r.done; err != nil {
			t.Logf("daemon run ended: %v", err)
		}
	})
	return r
}

func (r *daemonRig) report(t *testing.T) poll.CycleReport {
	t.Helper()
	select {
	case rep := <-r.reports:
		return rep
	case <-time.After(10 * time.Second):
		t.Fatal("no cycle report")
	}
	return poll.CycleReport{}
}

func TestBackoffSequence(t *testing.T) {
	want := []time.Duration{5, 10, 20, 40, 80, 160, 300, 300}
	for i, w := range want {
		assert.Equal(t, w*time.Second, poll.BackoffFor(i+1))
	}
}

func TestDaemonIntervalBackoffAndReset(t *testing.T) {
	sink := &scriptedSink{}
	f := newFixture(t, poll.OneByOne(sink), 3)
	f.api.Fail(ilerttest.Fault{Status: 503}, ilerttest.Fault{Status: 401}, ilerttest.Fault{Status: 500})
	r := startDaemon(t, f)

	for i, want := range []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second} {
		rep := r.report(t)
		assert.Error(t, rep.Err)
		assert.False(t, rep.Ready)
		assert.Equal(t, i+1, rep.Failures)
		s := r.clock.next(t)
		assert.Equal(t, want, s.d, "backoff after failure %d", i+1)
		if i == 1 {
			assert.Equal(t, "authentication failed — check integration key", rep.ReadyError)
		}
		s.wake <- true
	}
	rep := r.report(t)
	require.NoError(t, rep.Err)
	assert.True(t, rep.Ready)
	assert.Equal(t, 0, rep.Failures)
	assert.Equal(t, 3, rep.Summary.Delivered)
	s := r.clock.next(t)
	assert.Equal(t, 10*time.Second, s.d, "poll interval after success: backoff reset")
	s.wake <- true
	rep = r.report(t)
	assert.Equal(t, 0, rep.Summary.Polled)
	assert.Equal(t, 10*time.Second, r.clock.next(t).d)
}

// A retryable delivery failure is retried after the poll interval (the
// reference agent's rule: a target that comes back gets its alerts within
// one interval, not after a 5-minute backoff); /ready says the poll works
// but delivery does not. A failed poll in between still backs off.
func TestDaemonRetryableDeliveryFailureRetriesAfterInterval(t *testing.T) {
	sink := &scriptedSink{fail: map[int64]error{2: poll.Retryable("http_503", errors.New("503"))}}
	f := newFixture(t, poll.OneByOne(sink), 3)
	r := startDaemon(t, f)
	for i := 1; i <= 3; i++ {
		rep := r.report(t)
		require.Error(t, rep.Err)
		assert.False(t, rep.Ready, "the cycle failed: not ready")
		assert.True(t, rep.Polling, "polling works; the target is down")
		assert.Contains(t, rep.ReadyError, "http_503")
		assert.Equal(t, i, rep.Failures)
		s := r.clock.next(t)
		assert.Equal(t, 10*time.Second, s.d, "retried after the poll interval, failure %d", i)
		if i == 3 {
			f.api.Fail(ilerttest.Fault{Status: 502})
		}
		s.wake <- true
	}
	rep := r.report(t)
	assert.False(t, rep.Polling)
	s := r.clock.next(t)
	assert.Equal(t, 5*time.Second, s.d, "a failed poll backs off, from the start")
	sink.mu.Lock()
	delete(sink.fail, 2)
	sink.mu.Unlock()
	s.wake <- true
	rep = r.report(t)
	require.NoError(t, rep.Err)
	assert.True(t, rep.Ready)
	assert.Equal(t, 0, rep.Failures)
}

func TestDaemonFullBacklogThenInterval(t *testing.T) {
	sink := &scriptedSink{}
	f := newFixture(t, poll.OneByOne(sink), 2500)
	r := startDaemon(t, f)
	rep := r.report(t)
	assert.Equal(t, 10, rep.Summary.Polls)
	assert.Equal(t, 1000, rep.Summary.Delivered)
	s := r.clock.next(t)
	assert.Equal(t, 10*time.Second, s.d, "after 10 polls in a row: one interval")
	s.wake <- true
	assert.Equal(t, 1000, r.report(t).Summary.Delivered)
}

func TestDaemonStandbyInterval(t *testing.T) {
	f := newFixture(t, poll.OneByOne(&scriptedSink{}), 3)
	f.cycle.HA = &poll.HA{ClusterID: "c", InstanceID: "node-2"}
	// Another instance is leader already.
	other := &poll.Cycle{Client: f.cycle.Client, Sink: poll.OneByOne(&scriptedSink{}), Store: newMemStore(), Conn: f.cycle.Conn, HA: &poll.HA{ClusterID: "c", InstanceID: "node-1"}}
	_, err := other.Run(context.Background(), poll.Invocation{Owner: "o"})
	require.NoError(t, err)
	r := startDaemon(t, f)
	rep := r.report(t)
	assert.Equal(t, "standby", rep.Summary.Role)
	assert.Equal(t, 15*time.Second, r.clock.next(t).d)
}

func TestDaemonLeaseHeldWaitsInterval(t *testing.T) {
	f := newFixture(t, poll.OneByOne(&scriptedSink{}), 3)
	_, err := f.store.Acquire(context.Background(), f.cycle.Conn, "someone-else")
	require.NoError(t, err)
	r := startDaemon(t, f)
	rep := r.report(t)
	assert.True(t, rep.Summary.LeaseHeld)
	assert.NoError(t, rep.Err)
	assert.Equal(t, 10*time.Second, r.clock.next(t).d, "the loser waits one interval")
}

func TestDaemonStopsGracefully(t *testing.T) {
	f := newFixture(t, poll.OneByOne(&scriptedSink{}), 3)
	r := startDaemon(t, f)
	r.report(t)
	r.clock.next(t) // sleeping
	r.stop()
	select {
	case err := <-r.done:
		assert.NoError(t, err)
		r.done <- err
	case <-time.After(5 * time.Second):
		t.Fatal("daemon did not stop")
	}
}

// A daemon with HA that stops acknowledges its last cycle's items, which
// no poll of that cycle did (its last batch was not full): one poll with
// limit 1 and last-processed-id, so the next instance (a restarted daemon
// with a random --instance-id) is not handed them again. Once a cycle's
// polls acknowledged everything, or without HA, a stop polls nothing.
func TestDaemonHAStopAcknowledgesTheLastItems(t *testing.T) {
	stopAfterOneCycle := func(t *testing.T, ha *poll.HA, items int) (*fixture, []ilerttest.Request) {
		f := newFixture(t, poll.OneByOne(&scriptedSink{}), items)
		f.api.SetLeaderTTL(0)
		f.cycle.HA = ha
		r := startDaemon(t, f)
		require.NoError(t, r.report(t).Err)
		r.clock.next(t) // sleeping
		n := len(f.api.Requests())
		r.stop()
		select {
		case err := <-r.done:
			require.NoError(t, err)
			r.done <- err
		case <-time.After(5 * time.Second):
			t.Fatal("daemon did not stop")
		}
		return f, f.api.Requests()[n:]
	}
	f, reqs := stopAfterOneCycle(t, &poll.HA{ClusterID: "prod", InstanceID: "i-1"}, 3)
	require.Len(t, reqs, 1, "the acknowledging poll")
	assert.Equal(t, map[string]string{"limit": "1", "cluster-id": "prod", "instance-id": "i-1", "last-processed-id": "3"}, reqs[0].Query)
	assert.Len(t, f.api.Requests(), 2, "the cycle's one poll, then the stop's")

	_, reqs = stopAfterOneCycle(t, &poll.HA{ClusterID: "prod", InstanceID: "i-1"}, 0)
	assert.Empty(t, reqs, "nothing handled: nothing to acknowledge")
	_, reqs = stopAfterOneCycle(t, nil, 3)
	assert.Empty(t, reqs, "without HA the cursor is edgepoll's: no poll")
}

// With Start, the first ping follows the first successful cycle at once,
// then one every interval while healthy.
func TestHeartbeatFirstPingAtStart(t *testing.T) {
	clock := newFakeClock()
	start := make(chan struct{})
	pinged := make(chan struct{}, 10)
	hb := &poll.Heartbeat{Clock: clock, Start: start,
		Healthy: func() bool { return true },
		Ping:    func(context.Context) error { pinged <- struct{}{}; return nil },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { hb.Run(ctx); close(done) }()
	select {
	case <-pinged:
		t.Fatal("pinged before the first successful cycle")
	case <-time.After(50 * time.Millisecond):
	}
	close(start)
	<-pinged // at once, no sleep before it
	s := clock.next(t)
	assert.Equal(t, 30*time.Second, s.d)
	s.wake <- true
	<-pinged
	clock.next(t)
	cancel()
	<-done
}

func TestHeartbeatOnlyWhileHealthy(t *testing.T) {
	clock := newFakeClock()
	var mu sync.Mutex
	healthy, pings, reported := true, 0, 0
	hb := &poll.Heartbeat{Clock: clock,
		Healthy: func() bool { mu.Lock(); defer mu.Unlock(); return healthy },
		Ping: func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			pings++
			if pings == 2 {
				return errors.New("ilert down")
			}
			return nil
		},
		OnPing: func(error) { mu.Lock(); reported++; mu.Unlock() },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { hb.Run(ctx); close(done) }()
	// tick wakes the heartbeat and waits until it sleeps again: the
	// iteration (health check, ping, report) is over before the test changes
	// the health, so each tick sees exactly the state set before it.
	sleep := clock.next(t)
	tick := func() {
		assert.Equal(t, 30*time.Second, sleep.d)
		sleep.wake <- true
		sleep = clock.next(t)
	}
	setHealthy := func(h bool) { mu.Lock(); healthy = h; mu.Unlock() }
	tick()
	tick() // ping 2 fails: reported, loop goes on
	setHealthy(false)
	tick()
	tick()
	setHealthy(true)
	tick()
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 3, pings, "no pings while unhealthy")
	assert.Equal(t, 3, reported)
}
