package poll

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// CursorID is the state key of connection name when several connections
// share one connector key (fan-out): the key's ConnectionID and the name,
// so each keeps its own cursor, lease and dead letter. name is a --config
// connection name ([a-z0-9][a-z0-9-]{0,62}): the id is at most 96
// characters of [0-9a-z.-], usable as a DynamoDB key, a SQLite row and a
// file name.
func CursorID(connectorKey, name string) string {
	return ConnectionID(connectorKey) + "." + name
}

// FanOut is what the Cycles of the connections sharing one connector key
// share in one process: their polls (Polls) and where a connection without
// a cursor of its own starts.
//
// That start is fixed once per process, at the first cycle of any of them,
// before any moves: the furthest cursor stored under Plain (the key's cursor
// from before it was shared) and Members, or the oldest queued event (0)
// when none has one. Every member without a cursor of its own is given it as
// its own at once (through its lease; one whose lease is held takes it at
// its own first cycle), so each has one from its first cycle on, delivered
// or not, and a later process never takes it for a new member. So going from one connection on
// the key to several, or adding one, replays nothing; and a member that
// starts after its siblings moved (--max-parallel) still misses nothing,
// because the start was fixed before they moved. Later in the process a
// member without a cursor (state reset) starts from none, as any
// connection. Ignored with HA.
type FanOut struct {
	// Plain is the key's ConnectionID; Members the CursorIDs of the
	// connections on it (the Cycle's Conn among them).
	Plain   string
	Members []string
	// Polls are shared by the members whose cursors agree.
	Polls SharedPolls

	mu      sync.Mutex
	fixed   bool
	start   Position
	from    string          // the state key start came from ("": none had a cursor)
	applied map[string]bool // members that have their start (or had a cursor)
}

// polls is c's SharedPolls, nil without fan-out.
func (c *Cycle) polls() *SharedPolls {
	if c.FanOut == nil || c.HA != nil {
		return nil
	}
	return &c.FanOut.Polls
}

// takeLease takes the cycle's lease. The first cycle in the process of a
// fan-out member takes it under the FanOut's lock: the sibling that fixes
// the start holds the lock while it holds the others' leases to seed them,
// so it never makes a cycle of this process find its lease held.
func (r *run) takeLease(ctx context.Context) (Lease, error) {
	f := r.c.FanOut
	if f == nil || r.c.HA != nil {
		return r.c.Store.Acquire(ctx, r.c.LeaseConn(), r.inv.Owner)
	}
	f.mu.Lock()
	if f.applied[r.c.Conn] {
		f.mu.Unlock()
		return r.c.Store.Acquire(ctx, r.c.LeaseConn(), r.inv.Owner)
	}
	defer f.mu.Unlock()
	return r.c.Store.Acquire(ctx, r.c.LeaseConn(), r.inv.Owner)
}

// fanOutStart gives the cycle's connection its start if it has no cursor
// of its own and this is its first cycle in the process (see FanOut).
func (r *run) fanOutStart(ctx context.Context) error {
	f := r.c.FanOut
	if f == nil || r.c.HA != nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fixed && f.from == "" {
		r.c.warnFresh(r.log) // no cursor for the key: from the oldest queued event
	}
	if f.applied[r.c.Conn] {
		return nil
	}
	if f.applied == nil {
		f.applied = map[string]bool{}
	}
	if !f.fixed {
		if err := f.fix(ctx, r.c.Store); err != nil {
			return err
		}
		f.seedOthers(ctx, r.c.Store, r.c.Conn, r.inv.Owner, r.log)
	}
	if err := f.give(ctx, r.lease, r.c.Conn, r.log); err != nil {
		return err
	}
	if f.from == "" {
		r.c.warnFresh(r.log)
	}
	f.applied[r.c.Conn] = true
	return nil
}

// fix reads the start: the furthest cursor stored for the key; f.mu held.
func (f *FanOut) fix(ctx context.Context, st Store) error {
	insp, ok := st.(Inspector)
	if !ok {
		f.fixed = true
		return nil
	}
	for _, id := range append([]string{f.Plain}, f.Members...) {
		info, err := insp.Inspect(ctx, id)
		if err != nil {
			return fmt.Errorf("reading the cursor of %s: %w", id, err)
		}
		if info.HasCursor && (f.from == "" || info.Cursor > f.start.Cursor) {
			f.start, f.from = Position{Cursor: info.Cursor}, id
		}
	}
	f.fixed = true
	return nil
}

// seedOthers gives the start to the other members now, through their
// leases; one whose lease is held (a cycle of this process, or another
// process) takes it at its own first cycle. The leases are taken under an
// owner of their own (seedOwner): a store that lets an owner take its own
// lease again (DynamoDB) would otherwise hand the seeding the lease of a
// sibling's cycle in flight under this run's owner, and that cycle's saves
// would fail. f.mu held.
func (f *FanOut) seedOthers(ctx context.Context, st Store, self, owner string, log *slog.Logger) {
	for _, m := range f.Members {
		if m == self || f.applied[m] {
			continue
		}
		l, err := st.Acquire(ctx, m, seedOwner(owner))
		if err != nil {
			if !errors.Is(err, ErrLeaseHeld) {
				log.Debug("fan-out: could not seed a connection's cursor yet; it takes it at its first cycle", "state_key", m, "err", err)
			}
			continue
		}
		err = f.give(ctx, l, m, log)
		if rerr := l.Release(ctx); err == nil {
			err = rerr
		}
		if err == nil {
			f.applied[m] = true
		}
	}
}

// seedOwner is the lease owner under which the fan-out member that fixes
// the start seeds its siblings' cursors, for a cycle owned by owner.
func seedOwner(owner string) string { return owner + "-fan-out-seed" }

// give saves the start as member conn's cursor through its lease l if it
// has none: also when the start is the oldest queued event (no cursor for
// the key yet), so that the member has a cursor of its own from its first
// cycle on, delivered or not, and a later process never takes it for a
// connection added since (which would skip what it has not delivered yet).
// f.mu held.
func (f *FanOut) give(ctx context.Context, l Lease, conn string, log *slog.Logger) error {
	if _, has, err := l.Load(ctx); err != nil || has {
		return err
	}
	if err := setStart(ctx, l, f.start.Cursor); err != nil {
		return fmt.Errorf("saving the cursor it starts from: %w", err)
	}
	if f.from != "" {
		log.Info("fan-out: no cursor of its own yet; starting from the cursor stored for its connector key (nothing replayed)",
			"state_key", conn, "cursor", f.start.Cursor, "from", f.from)
	}
	return nil
}

// setStart stores cursor as l's first position. Save only moves a cursor
// forward, so it never creates one at 0; the operator's SetCursor does.
func setStart(ctx context.Context, l Lease, cursor int64) error {
	if cursor > 0 {
		return l.Save(ctx, Position{Cursor: cursor})
	}
	if set, ok := l.(CursorSetter); ok {
		return set.SetCursor(ctx, 0)
	}
	return nil
}
