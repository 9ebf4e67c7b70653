package poll

import (
	"context"
	"time"
)

// StateInfo is what the operator sees of one connection's state
// (`edgepoll state show`).
type StateInfo struct {
	// HasCursor is false before anything was delivered (or after a reset).
	HasCursor bool
	Cursor    int64
	// UpdatedAt is when the cursor was last written durably (zero: unknown).
	UpdatedAt time.Time
	Lease     LeaseInfo
	// Refusals is the current streak of items refused non-retryably.
	Refusals int
	// Stats are the connection's stored run statistics, where the backend
	// keeps them beside the cursor (DynamoDB; zero otherwise).
	Stats Stats
}

// LeaseInfo describes who holds a connection's lease.
type LeaseInfo struct {
	Held bool
	// Holder names the run holding the lease ("" when unknown or free).
	Holder string
	// ExpiresAt is when a held lease lapses unless renewed (zero: it never
	// expires by itself, e.g. a kernel lock freed when its holder dies).
	ExpiresAt time.Time
	// RenewedAt is when the holder last renewed the lease (zero: unknown).
	RenewedAt time.Time
	// Stalled: the holder has missed its renewals (most likely it was
	// killed without releasing the lease); the lease still blocks until
	// ExpiresAt.
	Stalled bool
}

// Inspector is a Store that reports a connection's state without taking its
// lease and without writing anything: it works while a run holds the lease.
type Inspector interface {
	Inspect(ctx context.Context, conn string) (StateInfo, error)
}

// CursorSetter is a Lease through which an operator rewrites the cursor.
// Unlike Save, SetCursor may move it backwards; ResetCursor forgets it (the
// next poll has after-id=0). Both are durable when they return and leave no
// other copy of the cursor behind that a later Load would prefer.
type CursorSetter interface {
	SetCursor(ctx context.Context, cursor int64) error
	ResetCursor(ctx context.Context) error
}

// Checker is a Sink (or Deliverer) that can tell whether its target is
// reachable without delivering anything (`edgepoll check`): it returns nil
// and a short note on what was checked, or the reason it is not.
type Checker interface {
	Check(ctx context.Context) (note string, err error)
}

// Check forwards to the Deliverer's Check, if it has one.
func (o oneByOne) Check(ctx context.Context) (string, error) {
	if c, ok := o.d.(Checker); ok {
		return c.Check(ctx)
	}
	return "", nil
}
