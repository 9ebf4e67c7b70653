package poll

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// MaxPollsPerCycle bounds how many polls one cycle makes while the server
// keeps answering full batches (drain a backlog, but never starve).
const MaxPollsPerCycle = 10

// HA configures server-managed high availability: the server elects a
// leader per cluster and keeps the cursor.
type HA struct {
	ClusterID  string
	InstanceID string
}

// Outcomes of one item, as reported to an Observer.
const (
	OutcomeDelivered = "delivered"
	OutcomeSkipped   = "skipped"  // permanent failure, cursor moved past it
	OutcomeFailed    = "failed"   // retryable failure, retried next cycle
	OutcomeFiltered  = "filtered" // passed over by a filter (ErrFiltered), cursor moved past it
)

// Observer receives what a cycle does, for metrics. Calls are cheap and
// never block; implementations must be safe for concurrent use.
type Observer interface {
	// Polled: result is "ok" or the PollError reason.
	Polled(result string, items int, d time.Duration)
	// Item: outcome is one of the Outcome constants; reason is "" when
	// delivered. d runs from the hand-over to the sink to the report.
	Item(outcome, reason string, d time.Duration)
	// Cursor: the cursor was persisted at this value.
	Cursor(cursor int64)
	// Role: the HA role of the last poll ("leader", "standby", "" without HA).
	Role(role string)
	// DeadLettered: a skipped item was written to the dead letter.
	DeadLettered()
}

type nopObserver struct{}

func (nopObserver) Polled(string, int, time.Duration)  {}
func (nopObserver) Item(string, string, time.Duration) {}
func (nopObserver) Cursor(int64)                       {}
func (nopObserver) Role(string)                        {}
func (nopObserver) DeadLettered()                      {}

// Invocation is what differs between two runs of one connection's cycle
// (a Lambda invocation, a one-shot run, a daemon): who holds the lease,
// where the cycle logs, and its deadline budget. It is passed to Run, never
// written into the Cycle, so a Cycle is shared by its runs unchanged.
type Invocation struct {
	// Owner names this run in the lease (a run id or Lambda request id).
	// Required: two runs with one owner would share the lease.
	Owner string
	// Log receives the cycle's log lines (nil: discarded).
	Log *slog.Logger
	// PersistTimeout bounds saving the cursor and releasing the lease after
	// the cycle's contexts are done. Default 10s.
	PersistTimeout time.Duration
	// RequireProgress: a cycle stopped early (soft deadline) before it
	// could poll, or before it handled a single item of a non-empty batch,
	// fails (Kind "deadline") instead of reporting success. Lambda sets it:
	// an invocation that could do nothing must never look successful.
	RequireProgress bool
}

// withDefaults fills in the defaults of the zero fields.
func (inv Invocation) withDefaults() Invocation {
	if inv.Log == nil {
		inv.Log = slog.New(slog.DiscardHandler)
	}
	if inv.PersistTimeout <= 0 {
		inv.PersistTimeout = 10 * time.Second
	}
	return inv
}

// Cycle runs poll cycles for one connection: what is constant for the
// connection. Build it once and call Run for every cycle (the loop reuses
// it; it remembers the HA last-processed id); what differs per run comes
// with each call (Invocation).
type Cycle struct {
	Client *Client
	Sink   Sink
	Store  Store
	// Conn is the connection id (ConnectionID of the key).
	Conn string
	// HA enables server-managed HA (nil: off).
	HA *HA
	// MaxPolls per cycle; default MaxPollsPerCycle.
	MaxPolls int
	// DeadLetter, if set, receives every item skipped as non-retryable,
	// durably, before the cursor moves past it (--dead-letter).
	DeadLetter DeadLetter
	// SkipLimit > 0: once SkipLimit items in a row were refused
	// non-retryably (counted across cycles and runs: Position.Refusals), the
	// next refusal is not skipped but fails the cycle (--skip-limit). 0: no
	// limit, every refusal is skipped (the reference agent's behaviour).
	SkipLimit int
	// Observer is told what the cycles do (metrics); nil: nothing.
	Observer Observer

	mu            sync.Mutex
	lastProcessed int64
	lastRole      string
}

// Summary says what one cycle did.
type Summary struct {
	Polls     int `json:"polls"`
	Polled    int `json:"polled"`
	Delivered int `json:"delivered"`
	Skipped   int `json:"skipped"`
	Failed    int `json:"failed"`
	// Filtered: items passed over by a filter (ErrFiltered).
	Filtered  int    `json:"filtered,omitempty"`
	Cursor    int64  `json:"cursor"`
	LeaseHeld bool   `json:"lease_held"`
	Role      string `json:"role,omitempty"`
	// Full: the last poll returned a full batch (more is waiting).
	Full bool `json:"full"`
	// Stopped: the cycle stopped early on request (signal, deadline).
	Stopped bool `json:"stopped,omitempty"`
	// Refusals: items refused in a row up to the cursor (--skip-limit).
	Refusals int `json:"refusals"`
	// Stats: the connection's stored Stats as updated by this cycle (zero
	// when the lease was not held or the state could not be read).
	Stats Stats `json:"-"`
}

// CycleError is a failed cycle. Kind is "auth", "poll", "delivery",
// "state" or "deadline" (RequireProgress); all of them make a one-shot run
// exit 1.
type CycleError struct {
	Kind   string
	Reason string // bounded
	Err    error
}

func (e *CycleError) Error() string { return e.Err.Error() }

// DeliveryFailed reports whether err is a cycle that polled but failed
// delivering (a retryable delivery failure, the skip limit): the loop
// retries it after the poll interval, not after a backoff.
func DeliveryFailed(err error) bool {
	var ce *CycleError
	return errors.As(err, &ce) && ce.Kind == "delivery"
}
func (e *CycleError) Unwrap() error { return e.Err }

// Run runs one cycle; cancelling ctx stops it at once (in-flight deliveries
// are aborted) but still persists what was delivered.
func (c *Cycle) Run(ctx context.Context, inv Invocation) (Summary, error) {
	return c.RunUntil(ctx, ctx, inv)
}

// RunUntil runs one cycle. When soft is done, the cycle starts no new poll
// or delivery, lets the deliveries in flight finish, persists the cursor and
// returns (Summary.Stopped). When hard is done, in-flight deliveries are
// aborted too. Persisting and releasing use a fresh PersistTimeout budget.
func (c *Cycle) RunUntil(soft, hard context.Context, inv Invocation) (sum Summary, err error) {
	inv = inv.withDefaults()
	log := inv.Log
	obs := c.Observer
	if obs == nil {
		obs = nopObserver{}
	}
	maxPolls := c.MaxPolls
	if maxPolls <= 0 {
		maxPolls = MaxPollsPerCycle
	}
	persistTimeout := inv.PersistTimeout
	persistCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(hard), persistTimeout)
	}

	// Taking the lease and loading the cursor wait for the store at most
	// storeTimeout, and not past a stop request: a store that never answers
	// fails the cycle, bounded, and SIGTERM ends the wait at once.
	sctx, cancelStore := context.WithTimeout(soft, storeTimeout)
	defer cancelStore()
	lease, err := c.Store.Acquire(sctx, c.Conn, inv.Owner)
	if err != nil && soft.Err() != nil {
		sum.Stopped = true
		return sum, nil
	}
	if errors.Is(err, ErrLeaseHeld) {
		log.Info("lease held by another run; not polling")
		sum.LeaseHeld = true
		return sum, nil
	}
	if err != nil {
		return sum, &CycleError{Kind: "state", Reason: "lease", Err: fmt.Errorf("taking the lease: %w", err)}
	}
	statsLoaded := false
	defer func() {
		pctx, cancel := persistCtx()
		defer cancel()
		if statsLoaded {
			c.saveStats(pctx, log, lease, &sum, err)
		}
		if rerr := lease.Release(pctx); rerr != nil {
			log.Warn("releasing the lease failed", "err", rerr)
		}
	}()

	pos, _, err := lease.Load(sctx)
	if err != nil && soft.Err() != nil {
		sum.Stopped = true
		return sum, nil
	}
	if err != nil {
		return sum, &CycleError{Kind: "state", Reason: "load", Err: fmt.Errorf("loading the cursor: %w", err)}
	}
	if sum.Stats, err = lease.LoadStats(sctx); err != nil {
		if soft.Err() != nil {
			sum.Stopped = true
			return sum, nil
		}
		return sum, &CycleError{Kind: "state", Reason: "load", Err: fmt.Errorf("loading the run statistics: %w", err)}
	}
	statsLoaded = true
	cursor, refusals := pos.Cursor, pos.Refusals
	sum.Cursor, sum.Refusals = cursor, refusals
	c.mu.Lock()
	if c.lastProcessed > cursor && c.HA != nil {
		cursor = c.lastProcessed
	}
	c.mu.Unlock()

	// Without HA the server keeps no cursor (after-id is ours), so while a
	// full batch is delivered the next page is fetched in the background; it
	// is used only if the whole batch was handled and the cursor reached its
	// last id. With HA, last-processed-id acknowledges items, so no prefetch.
	var prefetch *prefetched
	saver := NewSaver(hard, lease, persistTimeout, obs)
	defer saver.Close()
	polledOK := false // a poll was answered
	syncing := &syncer{}
	defer func() {
		if serr := syncing.wait(); serr != nil && err == nil {
			err = serr
		}
	}()
	defer func() {
		if prefetch != nil {
			prefetch.cancel()
			<-prefetch.done
		}
	}()
	for sum.Polls < maxPolls {
		if soft.Err() != nil {
			sum.Stopped = true
			break
		}
		q := Query{AfterID: cursor}
		if c.HA != nil {
			q = Query{ClusterID: c.HA.ClusterID, InstanceID: c.HA.InstanceID, LastProcessedID: cursor}
		}
		var (
			batch Batch
			err   error
			start = time.Now()
		)
		if prefetch != nil && prefetch.after == cursor {
			<-prefetch.done
			batch, err, start = prefetch.batch, prefetch.err, prefetch.start
		} else {
			if prefetch != nil { // the batch was not fully handled: discard
				prefetch.cancel()
				<-prefetch.done
			}
			batch, err = c.Client.Poll(soft, q) // a stop request cancels a poll at once
		}
		sum.Polls++
		prefetch = nil
		var badItem error // the items before an unusable one are delivered first
		if errors.As(err, new(*ItemError)) && len(batch.Items) > 0 {
			badItem, err = err, nil
		}
		if err != nil {
			reason := "error"
			var pe *PollError
			if errors.As(err, &pe) {
				reason = pe.Reason
			}
			obs.Polled(reason, 0, time.Since(start))
			if reason == "canceled" && soft.Err() != nil {
				sum.Stopped = true
				break
			}
			kind := "poll"
			if errors.Is(err, ErrAuth) {
				kind = "auth"
			}
			return sum, &CycleError{Kind: kind, Reason: reason, Err: err}
		}
		obs.Polled("ok", len(batch.Items), time.Since(start))
		polledOK = true
		sum.Full = batch.Full
		if c.HA != nil {
			sum.Role = batch.Role
			obs.Role(batch.Role)
			c.noteRole(log, batch.Role)
			if batch.Role != "leader" {
				break // a standby gets no items
			}
		}
		items := batch.Items
		for len(items) > 0 && items[0].ID <= cursor {
			log.Debug("skipping item at or below the cursor (already handled)", "item", items[0].ID, "cursor", cursor)
			items = items[1:]
		}
		sum.Polled += len(items)
		if batch.Full && c.HA == nil && sum.Polls < maxPolls && len(batch.Items) > 0 {
			prefetch = c.prefetch(soft, batch.Items[len(batch.Items)-1].ID)
		}
		if len(items) > 0 {
			log.Debug("polled", "items", len(items), "first", items[0].ID, "last", items[len(items)-1].ID, "full", batch.Full)
			newCursor, err := c.deliver(soft, hard, inv, obs, saver, items, &refusals, &sum)
			if newCursor > cursor {
				cursor = newCursor
				sum.Cursor, sum.Refusals = cursor, refusals
				c.mu.Lock()
				c.lastProcessed = cursor
				c.mu.Unlock()
			}
			if serr := syncing.wait(); serr != nil && err == nil {
				err = serr
			}
			syncing.start(lease, persistCtx)
			if err != nil {
				return sum, err
			}
			if sum.Stopped {
				break
			}
		}
		if badItem != nil {
			return sum, &CycleError{Kind: "poll", Reason: "bad_item", Err: badItem}
		}
		if !batch.Full {
			break
		}
	}
	if inv.RequireProgress && sum.Stopped && (!polledOK || sum.Polled > 0 && sum.Delivered+sum.Skipped == 0) {
		return sum, &CycleError{Kind: "deadline", Reason: "no_progress",
			Err: errors.New("stopped at the deadline before any progress: the time left was too short to poll and deliver")}
	}
	return sum, nil
}

// saveStats records the cycle's outcome in the store (failure streak, last
// success) so that one-shot and Lambda runs report them across runs.
func (c *Cycle) saveStats(ctx context.Context, log *slog.Logger, lease Lease, sum *Summary, err error) {
	st := sum.Stats
	if err != nil {
		st.Failures++
	} else {
		st.Failures, st.LastSuccess = 0, time.Now().UTC()
	}
	if serr := lease.SaveStats(ctx, st); serr != nil {
		log.Warn("saving the run statistics failed", "err", serr)
	}
	sum.Stats = st
}

// SkipLimitError is the error of a refusal beyond --skip-limit.
func SkipLimitError(limit int, last error) error {
	return fmt.Errorf("%d consecutive items refused by the target (last: %s): target misconfigured? (--skip-limit)", limit, refusalName(last))
}

// storeTimeout bounds taking the lease and loading the cursor.
const storeTimeout = 10 * time.Second

// syncer runs the end-of-batch Sync in the background, overlapping the next
// batch's deliveries; the cycle waits for it before the next Sync and before
// it releases the lease. Power loss in that window costs redelivery of the
// items since the previous completed Sync, never loss.
type syncer struct{ done chan error }

func (s *syncer) start(lease Lease, persistCtx func() (context.Context, context.CancelFunc)) {
	s.done = make(chan error, 1)
	go func() {
		ctx, cancel := persistCtx()
		defer cancel()
		if err := lease.Sync(ctx); err != nil {
			s.done <- &CycleError{Kind: "state", Reason: "sync", Err: fmt.Errorf("syncing the cursor: %w", err)}
			return
		}
		s.done <- nil
	}()
}

func (s *syncer) wait() error {
	if s.done == nil {
		return nil
	}
	err := <-s.done
	s.done = nil
	return err
}

type prefetched struct {
	after  int64
	start  time.Time
	batch  Batch
	err    error
	done   chan struct{}
	cancel context.CancelFunc
}

func (c *Cycle) prefetch(ctx context.Context, after int64) *prefetched {
	ctx, cancel := context.WithCancel(ctx)
	p := &prefetched{after: after, start: time.Now(), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(p.done)
		p.batch, p.err = c.Client.Poll(ctx, Query{AfterID: after})
	}()
	return p
}

func (c *Cycle) noteRole(log *slog.Logger, role string) {
	c.mu.Lock()
	prev := c.lastRole
	c.lastRole = role
	c.mu.Unlock()
	if prev != role {
		log.Info("HA role", "role", role, "previous", prev, "cluster", c.HA.ClusterID, "instance", c.HA.InstanceID)
	}
}

// passable: the cursor may move past an item reported with err (delivered,
// refused non-retryably, or filtered out).
func passable(err error) bool { return err == nil || IsPermanent(err) || IsFiltered(err) }

// deliver hands items to the sink and moves the cursor over the longest
// prefix of items that were delivered or failed permanently, handing every
// step to the saver (report never waits for a remote Save); once Send
// returned it waits for the saver's last Save. It returns the persisted
// cursor (0 if it did not move); *refusals is the refusal streak at that
// cursor.
//
// Where the cursor passes an item (pass, below) the guards against silent
// loss apply in this order: a refusal beyond SkipLimit stops the cursor
// (retryable); a refused item is written to the dead letter, durably,
// before the cursor passes it (a failed write stops the cursor), that is
// before the position past it is handed to the saver; the position saved
// carries the refusal streak with the cursor.
func (c *Cycle) deliver(soft, hard context.Context, inv Invocation, obs Observer, saver *Saver, items []Event, refusals *int, sum *Summary) (int64, error) {
	var (
		mu        sync.Mutex
		results   = make([]error, len(items))
		reported  = make([]bool, len(items))
		next      int  // first index not yet passed by the cursor
		retryable = -1 // index of the first retryable failure
		failed    int  // items that failed retryably
		saveErr   error
		stopErr   *CycleError // a guard stopped the cursor (skip limit, dead letter)
		ended     bool        // Send returned: later reports are ignored
		start     = time.Now()
		dlCtx     = saveContext{parent: context.WithoutCancel(hard), timeout: inv.PersistTimeout}
		log       = inv.Log
	)
	// pass moves the cursor past items[next] in memory, or returns why it
	// may not: the skip limit (the item counts as a retryable failure) or a
	// dead letter that could not be written.
	pass := func() *CycleError {
		ev, res := items[next], results[next]
		d := time.Since(start)
		if IsFiltered(res) {
			obs.Item(OutcomeFiltered, "", d)
			sum.Filtered++
			log.Debug("filtered out", "item", ev.ID)
			return nil
		}
		if res == nil {
			obs.Item(OutcomeDelivered, "", d)
			sum.Delivered++
			sum.Stats.LastDelivery = time.Now().UTC()
			*refusals = 0
			log.Debug("delivered", "item", ev.ID)
			return nil
		}
		if c.SkipLimit > 0 && *refusals >= c.SkipLimit {
			obs.Item(OutcomeFailed, "skip_limit", d)
			sum.Failed++
			log.Error("refusal beyond --skip-limit: not skipping the item", "item", ev.ID, "refusals", *refusals, "reason", ReasonOf(res), "err", res)
			return &CycleError{Kind: "delivery", Reason: "skip_limit", Err: SkipLimitError(c.SkipLimit, res)}
		}
		if c.DeadLetter != nil {
			if err := c.DeadLetter.Append(dlCtx.ctx(), c.Conn, NewDeadLetterRecord(c.Conn, ev, res, time.Now())); err != nil {
				log.Error("writing the dead letter failed: not skipping the item", "item", ev.ID, "err", err)
				return &CycleError{Kind: "state", Reason: "dead_letter", Err: fmt.Errorf("item %d not skipped: writing the dead letter: %w", ev.ID, err)}
			}
			obs.DeadLettered()
		}
		obs.Item(OutcomeSkipped, ReasonOf(res), d)
		sum.Skipped++
		*refusals++
		log.Warn("delivery failed permanently, skipping item", "item", ev.ID, "reason", ReasonOf(res), "err", res)
		return nil
	}
	defer dlCtx.stop()
	report := func(i int, err error) bool {
		mu.Lock()
		defer mu.Unlock()
		if ended {
			log.Error("sink reported an item after Send returned; ignoring", "index", i)
			return false
		}
		if i < 0 || i >= len(items) || reported[i] {
			log.Error("sink reported an item twice or out of range; ignoring", "index", i)
			return false
		}
		reported[i] = true
		results[i] = err
		if !passable(err) {
			obs.Item(OutcomeFailed, ReasonOf(err), time.Since(start))
			sum.Failed++
			failed++
			if retryable < 0 || i < retryable {
				retryable = i
			}
			// One line per cycle names the cause (the cycle's error), not
			// one identical line per item.
			log.Debug("delivery failed, will retry next cycle", "item", items[i].ID, "reason", ReasonOf(err), "err", err)
		}
		advanced := false
		for stopErr == nil && next < len(items) && reported[next] && passable(results[next]) {
			if stopErr = pass(); stopErr != nil {
				break
			}
			// Passed: its payload is released now (the sink reported it),
			// so a page's memory shrinks as it is delivered while the next
			// page arrives (issue 19).
			items[next].Payload = nil
			next++
			advanced = true
		}
		if advanced && saveErr == nil {
			saveErr = saver.Advance(Position{Cursor: items[next-1].ID, Refusals: *refusals})
		}
		if saveErr != nil || stopErr != nil || retryable >= 0 {
			return false
		}
		return soft.Err() == nil
	}
	c.Sink.Send(hard, items, report)

	mu.Lock()
	defer mu.Unlock()
	ended = true // the cycle's view of this batch is final: no later Advance
	saved, err := saver.Wait()
	if err != nil {
		saveErr = err
	}
	cursor := saved.Cursor
	if cursor > 0 {
		*refusals = saved.Refusals // the streak at the persisted cursor
	}
	switch {
	case saveErr != nil:
		return cursor, &CycleError{Kind: "state", Reason: "save", Err: fmt.Errorf("saving the cursor: %w", saveErr)}
	case stopErr != nil:
		return cursor, stopErr
	case retryable >= 0:
		more := ""
		if failed > 1 {
			more = fmt.Sprintf(" (and %d more items)", failed-1)
		}
		return cursor, &CycleError{Kind: "delivery", Reason: ReasonOf(results[retryable]),
			Err: fmt.Errorf("delivery of item %d failed%s: %w", items[retryable].ID, more, results[retryable])}
	case next < len(items):
		if soft.Err() != nil || hard.Err() != nil {
			sum.Stopped = true
			if hard.Err() != nil && soft.Err() == nil {
				return cursor, &CycleError{Kind: "delivery", Reason: "canceled", Err: fmt.Errorf("delivery aborted at item %d: %w", items[next].ID, hard.Err())}
			}
			return cursor, nil
		}
		return cursor, &CycleError{Kind: "delivery", Reason: "unreported",
			Err: fmt.Errorf("sink returned without reporting item %d", items[next].ID)}
	}
	return cursor, nil
}
