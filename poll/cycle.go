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
	// FinalAck (one-shot runs, Lambda invocations): with HA, a run that
	// delivered or skipped items its polls have not acknowledged yet ends
	// with one more poll (limit 1) carrying last-processed-id, delivering
	// nothing from its answer, so the next run, of this instance or of any
	// other, is not handed the run's last batch again. A daemon's next
	// cycle, or its stop (Daemon.Run), acknowledges it instead. Its failure is logged at WARN and
	// counted (Observer.Polled), not the cycle's error.
	FinalAck bool
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
	// Conn is the connection id (ConnectionID of the key; CursorID when
	// several connections share the key).
	Conn string
	// HA enables server-managed HA (nil: off).
	HA *HA
	// FanOut, when several connections share this one's connector key
	// (Conn is then its CursorID): their shared polls and where one without
	// a cursor of its own starts. nil: none. Ignored with HA.
	FanOut *FanOut
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
	// StateName names the state store as the operator gave it (--state:
	// a path or a table), in the WARN of a cycle that finds no cursor.
	StateName string

	mu            sync.Mutex
	lastProcessed int64
	lastRole      string
	warnedFresh   bool // the no-cursor WARN was logged
}

// LeaseConn is the state key the cycle leases and keeps its position under:
// the connection's (Conn), or with HA this instance's own
// (HAConnectionID): an instance acknowledges (last-processed-id) only what
// it delivered itself, so a new instance sends none in its first poll, and
// a one-shot instance's last batch is acknowledged by its next run's first
// poll. HA instances sharing a store do not exclude each other: the server
// elects the leader.
func (c *Cycle) LeaseConn() string {
	if c.HA == nil {
		return c.Conn
	}
	return HAConnectionID(c.Conn, c.HA.ClusterID, c.HA.InstanceID)
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
	// AckPending, with HA: the cursor this cycle moved to that no poll
	// has acknowledged yet (0: none). A daemon's next cycle acknowledges
	// it; a daemon that stops does so with Cycle.Acknowledge.
	AckPending int64 `json:"-"`
}

// Run runs one cycle; cancelling ctx stops it at once (in-flight deliveries
// are aborted) but still persists what was delivered.
func (c *Cycle) Run(ctx context.Context, inv Invocation) (Summary, error) {
	return c.RunUntil(ctx, ctx, inv)
}

// RunUntil runs one cycle. When soft is done, the cycle starts no new poll
// or delivery, lets the deliveries in flight finish, persists the cursor and
// returns (Summary.Stopped). When hard is done, in-flight deliveries are
// aborted too. Persisting and releasing use a fresh PersistTimeout budget.
//
// The steps: take the lease, load the position, poll and deliver until the
// queue is drained (or MaxPolls, a failure, a stop), then settle the
// background work and release the lease, saving the run's statistics.
func (c *Cycle) RunUntil(soft, hard context.Context, inv Invocation) (Summary, error) {
	r := c.newRun(soft, hard, inv)
	if !r.acquire() {
		return r.sum, r.err
	}
	if r.load() {
		r.err = r.drain()
	}
	return r.sum, r.close()
}

// run is one cycle in progress: what RunUntil's steps share. Everything on
// it is used by the cycle's goroutine only.
type run struct {
	c          *Cycle
	soft, hard context.Context
	inv        Invocation
	log        *slog.Logger
	obs        Observer
	maxPolls   int
	sum        Summary
	err        error // the cycle's error
	lease      Lease
	statsOK    bool // the stored Stats were loaded: save them at the end
	saver      *Saver
	syncing    syncer
	prefetch   *prefetched
	cursor     int64 // polls fetch the items after it
	acked      int64 // with HA: the last-processed-id a leader's answered poll carried
	moved      bool  // this run moved the cursor (FinalAck: only then)
	refusals   int   // the refusal streak at the persisted cursor
	polledOK   bool  // a poll was answered
}

func (c *Cycle) newRun(soft, hard context.Context, inv Invocation) *run {
	inv = inv.withDefaults()
	r := &run{c: c, soft: soft, hard: hard, inv: inv, log: inv.Log, obs: c.Observer, maxPolls: c.MaxPolls}
	if r.obs == nil {
		r.obs = nopObserver{}
	}
	if r.maxPolls <= 0 {
		r.maxPolls = MaxPollsPerCycle
	}
	return r
}

// persistCtx is a fresh persist budget that outlives the cycle's contexts.
func (r *run) persistCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(r.hard), r.inv.PersistTimeout)
}

// storeCtx bounds taking the lease and loading the cursor: at most
// storeTimeout, and not past a stop request (a store that never answers
// fails the cycle, bounded, and SIGTERM ends the wait at once).
func (r *run) storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.soft, storeTimeout)
}

// stopped reports whether err is the end of a store call by a stop
// request; then the cycle stops early, with no error.
func (r *run) stopped(err error) bool {
	if err != nil && r.soft.Err() != nil {
		r.sum.Stopped = true
		return true
	}
	return false
}

// acquire takes the lease; false when the cycle ends here (another run
// holds it, a stop request, a failure: r.err).
func (r *run) acquire() bool {
	ctx, cancel := r.storeCtx()
	defer cancel()
	lease, err := r.takeLease(ctx)
	switch {
	case r.stopped(err):
		return false
	case errors.Is(err, ErrLeaseHeld):
		r.log.Info("lease held by another run; not polling")
		r.sum.LeaseHeld = true
		return false
	case err != nil:
		r.err = &CycleError{Kind: KindState, Reason: ReasonLease, Err: fmt.Errorf("taking the lease: %w", err)}
		return false
	}
	r.lease = lease
	return true
}

// load reads the position and the statistics; false when the cycle ends
// here (a stop request, a failure: r.err).
func (r *run) load() bool {
	ctx, cancel := r.storeCtx()
	defer cancel()
	if err := r.fanOutStart(ctx); err != nil {
		if !r.stopped(err) {
			r.err = &CycleError{Kind: KindState, Reason: ReasonLoad, Err: err}
		}
		return false
	}
	pos, has, err := r.lease.Load(ctx)
	if r.stopped(err) {
		return false
	}
	if err != nil {
		r.err = &CycleError{Kind: KindState, Reason: ReasonLoad, Err: fmt.Errorf("loading the cursor: %w", err)}
		return false
	}
	if !has {
		r.c.warnFresh(r.log)
	}
	if r.sum.Stats, err = r.lease.LoadStats(ctx); err != nil {
		if !r.stopped(err) {
			r.err = &CycleError{Kind: KindState, Reason: ReasonLoad, Err: fmt.Errorf("loading the run statistics: %w", err)}
		}
		return false
	}
	r.statsOK = true
	r.obs.Cursor(pos.Cursor) // the stored cursor, from the first cycle on
	r.cursor, r.refusals = pos.Cursor, pos.Refusals
	r.sum.Cursor, r.sum.Refusals = pos.Cursor, pos.Refusals
	r.c.mu.Lock()
	if r.c.lastProcessed > r.cursor && r.c.HA != nil {
		r.cursor = r.c.lastProcessed
	}
	r.c.mu.Unlock()
	r.saver = NewSaver(r.hard, r.lease, r.inv.PersistTimeout, r.obs)
	return true
}

// errStopped ends drain's loop on a stop request (not an error).
var errStopped = errors.New("stopped on request")

// drain polls and delivers until the server has no full batch left, up to
// maxPolls, or a failure or a stop request ends the cycle.
//
// Without HA the server keeps no cursor (after-id is ours), so while a full
// batch is delivered the next page is fetched in the background; it is used
// only if the whole batch was handled and the cursor reached its last id.
// With HA, last-processed-id acknowledges items, so no prefetch.
func (r *run) drain() error {
	for r.sum.Polls < r.maxPolls {
		if r.soft.Err() != nil {
			r.sum.Stopped = true
			break
		}
		batch, badItem, err := r.poll()
		if err == nil {
			err = r.handle(batch, badItem)
		}
		if errors.Is(err, errStopped) {
			break
		}
		if err != nil {
			return err
		}
		if !batch.Full || r.sum.Stopped || r.c.HA != nil && batch.Role != "leader" {
			break
		}
	}
	return r.requireProgress()
}

// query is the next poll's query.
func (r *run) query() Query {
	if r.c.HA != nil {
		return Query{ClusterID: r.c.HA.ClusterID, InstanceID: r.c.HA.InstanceID, LastProcessedID: r.cursor}
	}
	return Query{AfterID: r.cursor}
}

// poll fetches the next page: the prefetched one if it follows the cursor,
// else a new poll (a stop request cancels it at once: errStopped). An
// unusable item in an otherwise good page is badItem: the items before it
// are delivered first.
func (r *run) poll() (batch Batch, badItem error, err error) {
	start := time.Now()
	if p := r.prefetch; p != nil && p.after == r.cursor {
		<-p.done
		batch, err, start = p.batch, p.err, p.start
	} else {
		r.stopPrefetch() // the batch was not fully handled: discard it
		q := r.query()
		batch, err = r.c.polls().Poll(r.soft, r.c.Client, q)
		if err == nil && batch.Role == "leader" {
			r.acked = q.LastProcessedID
		}
	}
	r.prefetch = nil
	r.sum.Polls++
	if errors.As(err, new(*ItemError)) && len(batch.Items) > 0 {
		badItem, err = err, nil
	}
	if err != nil {
		reason := pollReason(err)
		r.obs.Polled(reason, 0, time.Since(start))
		if Reason(reason) == ReasonCanceled && r.soft.Err() != nil {
			r.sum.Stopped = true
			return batch, nil, errStopped
		}
		kind := KindPoll
		if errors.Is(err, ErrAuth) {
			kind = KindAuth
		}
		return batch, nil, &CycleError{Kind: kind, Reason: Reason(reason), Err: err}
	}
	r.obs.Polled("ok", len(batch.Items), time.Since(start))
	r.polledOK = true
	r.sum.Full = batch.Full
	return batch, badItem, nil
}

// handle delivers a poll answer: a standby gets no items; the items at or
// below the cursor are dropped; the next page is prefetched; the rest is
// delivered and the cursor moved.
func (r *run) handle(batch Batch, badItem error) error {
	if r.c.HA != nil {
		r.sum.Role = batch.Role
		r.obs.Role(batch.Role)
		r.c.noteRole(r.log, batch.Role)
		if batch.Role != "leader" {
			return nil // a standby gets no items
		}
	}
	items := r.fresh(batch.Items)
	r.sum.Polled += len(items)
	if batch.Full && r.c.HA == nil && r.sum.Polls < r.maxPolls && len(batch.Items) > 0 {
		r.prefetch = r.c.prefetch(r.soft, batch.Items[len(batch.Items)-1].ID)
	}
	if len(items) > 0 {
		r.log.Debug("polled", "items", len(items), "first", items[0].ID, "last", items[len(items)-1].ID, "full", batch.Full)
		if err := r.deliver(items); err != nil {
			return err
		}
		if r.sum.Stopped {
			return errStopped
		}
	}
	if badItem != nil {
		return &CycleError{Kind: KindPoll, Reason: ReasonBadItem, Err: badItem}
	}
	return nil
}

// fresh drops the items at or below the cursor (already handled). The
// server sends none after after-id: if it does (its ids restarted?), they
// are never delivered, so each is counted (OutcomeStale) and logged at
// WARN with the ids, never silently.
func (r *run) fresh(items []Event) []Event {
	var stale []int64
	for len(items) > 0 && items[0].ID <= r.cursor {
		stale = append(stale, items[0].ID)
		r.obs.Item(OutcomeStale, "", 0)
		items = items[1:]
	}
	if len(stale) > 0 {
		r.log.Warn("the poll answered items at or below the cursor: not delivered (already handled, or the ilert ids restarted)",
			"items", stale, "cursor", r.cursor)
	}
	return items
}

// deliver hands items to the sink (a batch), moves the cursor to what was
// persisted, and starts the batch's Sync once the previous one is done.
func (r *run) deliver(items []Event) error {
	b := newBatch(r, items)
	err := b.deliver()
	if saved := b.saved; saved.Cursor > r.cursor {
		r.cursor, r.refusals, r.moved = saved.Cursor, saved.Refusals, true
		r.sum.Cursor, r.sum.Refusals = r.cursor, r.refusals
		r.c.mu.Lock()
		r.c.lastProcessed = r.cursor
		r.c.mu.Unlock()
	}
	if serr := r.syncing.wait(); serr != nil && err == nil {
		err = serr
	}
	r.syncing.start(r.lease, r.persistCtx)
	return err
}

// requireProgress fails a cycle stopped early before it could do anything,
// when the invocation asks for it (RequireProgress).
func (r *run) requireProgress() error {
	s := &r.sum
	if r.inv.RequireProgress && s.Stopped && (!r.polledOK || s.Polled > 0 && s.Delivered+s.Skipped == 0) {
		return &CycleError{Kind: KindDeadline, Reason: ReasonNoProgress,
			Err: errors.New("stopped at the deadline before any progress: the time left was too short to poll and deliver")}
	}
	return nil
}

func (r *run) stopPrefetch() {
	if r.prefetch != nil {
		r.prefetch.cancel()
		<-r.prefetch.done
		r.prefetch = nil
	}
}

// close ends the cycle: the prefetch is dropped, the last Sync waited for,
// the run's statistics saved and the lease released (within a fresh
// persist budget), then, with FinalAck, the last items acknowledged. It
// returns the cycle's error.
func (r *run) close() error {
	r.stopPrefetch()
	if serr := r.syncing.wait(); serr != nil && r.err == nil {
		r.err = serr
	}
	if r.saver != nil {
		r.saver.Close()
	}
	pctx, cancel := r.persistCtx()
	defer cancel()
	if r.statsOK {
		r.c.saveStats(pctx, r.log, r.lease, &r.sum, r.err)
	}
	if err := r.lease.Release(pctx); err != nil {
		r.log.Warn("releasing the lease failed", "err", err)
	}
	r.finalAck()
	if r.c.HA != nil && r.moved && r.cursor > r.acked {
		r.sum.AckPending = r.cursor
	}
	return r.err
}

// finalAck acknowledges, with one last poll, the items the run handled
// after its last answered poll (Invocation.FinalAck). It runs last, once
// the cursor was persisted and the lease released (a Lambda invocation's
// persist budget is not spent on it), within PersistTimeout and the hard
// limit.
func (r *run) finalAck() {
	if !r.inv.FinalAck || r.c.HA == nil || !r.moved || r.cursor <= r.acked || r.hard.Err() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(r.hard, r.inv.PersistTimeout)
	defer cancel()
	r.sum.Polls++
	if r.c.acknowledge(ctx, r.log, r.obs, r.cursor) {
		r.acked = r.cursor
	}
}

// Acknowledge tells ilert, with HA, that the items up to cursor were
// handled (Summary.AckPending of the connection's last cycle): one poll
// asking for one item (the smallest answer) with last-processed-id,
// delivering nothing from its answer (the next run is handed it again).
// A daemon that stops calls it, so that the next instance is not handed
// the last batch again. Without HA, or for cursor 0, it does nothing. Its
// failure is logged at WARN (inv's logger) and counted, and reported.
func (c *Cycle) Acknowledge(ctx context.Context, inv Invocation, cursor int64) bool {
	if c.HA == nil || cursor <= 0 || ctx.Err() != nil {
		return false
	}
	inv = inv.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, inv.PersistTimeout)
	defer cancel()
	var obs Observer = nopObserver{}
	if c.Observer != nil {
		obs = c.Observer
	}
	return c.acknowledge(ctx, inv.Log, obs, cursor)
}

// acknowledge makes the acknowledging poll of Acknowledge and finalAck.
func (c *Cycle) acknowledge(ctx context.Context, log *slog.Logger, obs Observer, cursor int64) bool {
	q := Query{ClusterID: c.HA.ClusterID, InstanceID: c.HA.InstanceID, LastProcessedID: cursor, Limit: 1}
	start := time.Now()
	batch, err := c.Client.Poll(ctx, q)
	if err != nil {
		obs.Polled(pollReason(err), 0, time.Since(start))
		log.Warn("the final poll acknowledging this run's last items failed: the next run may deliver them again",
			"last_processed_id", q.LastProcessedID, "err", err)
		return false
	}
	obs.Polled("ok", 0, time.Since(start))
	log.Debug("final poll: last items acknowledged", "last_processed_id", q.LastProcessedID, "role", batch.Role)
	return true
}

// pollReason is a failed poll's bounded reason (PollError.Reason).
func pollReason(err error) string {
	var pe *PollError
	if errors.As(err, &pe) {
		return pe.Reason
	}
	return "error"
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
			s.done <- &CycleError{Kind: KindState, Reason: ReasonSync, Err: fmt.Errorf("syncing the cursor: %w", err)}
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
		p.batch, p.err = c.polls().Poll(ctx, c.Client, Query{AfterID: after})
	}()
	return p
}

// warnFresh logs, once per Cycle, that no cursor was found: the cycle
// starts from the oldest event ilert still queues, so a new or mistyped
// state replays the queue, and the log says why. With HA the server keeps
// the cursor: a new instance replays nothing.
func (c *Cycle) warnFresh(log *slog.Logger) {
	c.mu.Lock()
	warned := c.warnedFresh
	c.warnedFresh = true
	c.mu.Unlock()
	if warned || c.HA != nil {
		return
	}
	state := c.StateName
	if state == "" {
		state = "(unnamed)"
	}
	log.Warn("no cursor for this connection in the state store: starting from the oldest queued event "+
		"(a new or mistyped state replays every event ilert still queues)", "state", state)
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
