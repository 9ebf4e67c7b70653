package poll

import (
	"context"
	"sync"
	"time"
)

// CheapSaver is implemented by leases whose Save is a local memory write
// (the local backends' hot cursor in a shared mapping: no syscall, no round
// trip). A Saver saves through such a lease in the caller, after every
// item, which keeps the redelivery after a SIGKILL at the item in flight.
type CheapSaver interface {
	CheapSave() bool
}

// Saver persists a cycle's position: the cursor at the highest id of the
// contiguous prefix of items that were delivered (or skipped), with the
// refusal streak ending there. Advance hands it a new prefix end and never
// waits for storage; Wait waits for the last save.
//
// For a lease with a remote Save (DynamoDB), at most one Save is in flight:
// the prefix ends handed over while it runs are coalesced into the next
// one, so a storage round trip is never on the delivery path and a drain
// costs about one Save per round trip, not one per item. For a CheapSaver
// lease, Advance saves at once, in the caller.
//
// Saves are monotonic (a Save never writes a lower cursor than an earlier
// one) and only ever write a position handed to Advance: whatever the cycle
// must do before the cursor passes an item (the dead letter of a skipped
// one) is done before that position is handed over. The first failed Save
// (a lost lease: ErrLeaseLost) ends saving: no later Save is attempted, and
// Advance and Wait return the error, so a run that lost its lease stops
// writing and delivering.
type Saver struct {
	lease   Lease
	inline  bool
	timeout time.Duration
	hard    context.Context // the cycle's: once it is done, saves share one budget
	parent  context.Context // hard without its cancellation
	obs     Observer

	mu     sync.Mutex
	idle   sync.Cond // on mu: a save finished
	want   Position  // highest position handed to Advance
	saved  Position  // highest position persisted
	busy   bool      // a save is in flight (remote leases)
	err    error     // first failed Save
	budget time.Time // once hard is done: the deadline of every later save
	stop   func() bool
	inlCtx saveContext
}

// NewSaver returns a Saver writing through lease. Each Save gets timeout
// (default 10s) and outlives the cancellation of ctx (a delivered item's
// cursor is still saved); once ctx is done, the saves that remain share one
// timeout (a deadline that cancelled the cycle leaves one persist budget,
// not one per save). obs (may be nil) is told each persisted cursor.
func NewSaver(ctx context.Context, lease Lease, timeout time.Duration, obs Observer) *Saver {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	if obs == nil {
		obs = nopObserver{}
	}
	cs, inline := lease.(CheapSaver)
	s := &Saver{
		lease: lease, inline: inline && cs.CheapSave(), timeout: timeout,
		hard: ctx, parent: context.WithoutCancel(ctx), obs: obs,
	}
	s.idle.L = &s.mu
	s.inlCtx = saveContext{parent: s.parent, timeout: timeout}
	s.stop = context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.startBudget()
		s.mu.Unlock()
	})
	return s
}

// Advance hands over a new end of the delivered prefix. It returns the
// error of a failed Save (then nothing more is saved), else nil. It never
// waits for a remote Save.
func (s *Saver) Advance(pos Position) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil || pos.Cursor <= s.want.Cursor {
		return s.err
	}
	s.want = pos
	if s.inline {
		s.record(pos, s.lease.Save(s.inlCtx.ctx(), pos))
		return s.err
	}
	if !s.busy {
		s.busy = true
		go s.run()
	}
	return nil
}

// run saves until the persisted cursor caught up with want (or a Save
// failed): one Save at a time, each writing the latest prefix end.
func (s *Saver) run() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.err == nil && s.want.Cursor > s.saved.Cursor {
		target := s.want
		deadline := time.Now().Add(s.timeout)
		if s.hard.Err() != nil {
			s.startBudget() // if the AfterFunc has not yet
			deadline = s.budget
		}
		s.mu.Unlock()
		ctx, cancel := context.WithDeadline(s.parent, deadline)
		err := s.lease.Save(ctx, target)
		cancel()
		s.mu.Lock()
		s.record(target, err)
		s.idle.Broadcast()
	}
	s.busy = false
	s.idle.Broadcast()
}

// startBudget starts the one persist budget left once hard is done; s.mu
// is held.
func (s *Saver) startBudget() {
	if s.budget.IsZero() {
		s.budget = time.Now().Add(s.timeout)
	}
}

// record notes the outcome of a Save of pos; s.mu is held.
func (s *Saver) record(pos Position, err error) {
	if err != nil {
		if s.err == nil {
			s.err = err
		}
		return
	}
	if pos.Cursor > s.saved.Cursor {
		s.saved = pos
		s.obs.Cursor(pos.Cursor)
	}
}

// Wait waits until every position handed to Advance is persisted (or a
// Save failed) and returns the persisted position (zero if none was saved)
// and the error of the failed Save, if any.
func (s *Saver) Wait() (saved Position, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.busy {
		s.idle.Wait()
	}
	return s.saved, s.err
}

// Close releases the Saver's resources after the last Wait.
func (s *Saver) Close() {
	s.stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inlCtx.stop()
}

// saveContext hands each per-item Save a context with at least half the
// persist timeout left, without a new timer per item: a context is reused
// until half its time is gone. It outlives cancellation of the cycle (a
// delivered item's cursor is still saved).
type saveContext struct {
	parent   context.Context
	timeout  time.Duration
	cur      context.Context
	cancel   context.CancelFunc
	deadline time.Time
}

func (s *saveContext) ctx() context.Context {
	if s.cur == nil || time.Until(s.deadline) < s.timeout/2 {
		s.stop()
		s.deadline = time.Now().Add(s.timeout)
		s.cur, s.cancel = context.WithDeadline(s.parent, s.deadline)
	}
	return s.cur
}

func (s *saveContext) stop() {
	if s.cancel != nil {
		s.cancel()
	}
}
