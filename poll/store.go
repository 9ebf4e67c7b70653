package poll

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Store is a state backend: it keeps one cursor per connection and hands out
// an exclusive lease per connection (single flight across processes).
type Store interface {
	// Acquire takes the lease on conn for owner. It returns ErrLeaseHeld
	// (possibly wrapped) when another live owner holds it. A lease whose
	// holder died (process killed) or expired must be takeable.
	Acquire(ctx context.Context, conn, owner string) (Lease, error)
	Close() error
}

// Position is how far a connection got: the cursor and the refusal streak
// that ends at it. The two are saved together, so a run killed between two
// items never loses the count of items it skipped (--skip-limit).
type Position struct {
	// Cursor is the last edge item id passed (delivered or skipped).
	Cursor int64
	// Refusals is the number of items refused non-retryably in a row up to
	// and including Cursor (0 once an item was delivered).
	Refusals int
}

// Stats are what one-shot and Lambda runs need to remember about the
// connection's past cycles, so their metrics and summaries tell the truth
// across runs. Written once at the end of every cycle that held the lease.
type Stats struct {
	// Failures is the number of consecutive failed cycles (0 after success).
	Failures int
	// LastSuccess is when the last successful cycle ended (zero: never).
	LastSuccess time.Time
	// LastDelivery is when an item was last delivered (zero: never).
	LastDelivery time.Time
}

// Lease is a held lease on one connection; cursor access goes through it so
// that a backend can fence writes by a run that lost its lease.
type Lease interface {
	// Load returns the stored position (zero, false when no cursor was
	// stored yet).
	Load(ctx context.Context) (pos Position, ok bool, err error)
	// Save persists pos durably against a process crash (SIGKILL) before it
	// returns. The cursor never moves backwards: saving a cursor lower than
	// or equal to the stored one leaves the stored position (refusals
	// included). A backend that detects the lease was lost returns
	// ErrLeaseLost (wrapped).
	Save(ctx context.Context, pos Position) error
	// Sync makes the saved cursor durable against power loss (fsync).
	// The cycle starts it at the end of each batch and lets it overlap the
	// next batch: Sync must be safe to run concurrently with Save (never
	// with another Sync or Release).
	Sync(ctx context.Context) error
	// Release gives the lease up. Safe to call once after any error.
	Release(ctx context.Context) error
	// LoadStats returns the stored Stats (zero when none were stored).
	LoadStats(ctx context.Context) (Stats, error)
	// SaveStats replaces the stored Stats so that the next run loads them
	// (they survive a process kill); unlike the cursor they need not
	// survive a power loss, so a store may keep them off the durable path
	// (the local stores do, to spare an empty cycle any fsync). It is
	// independent of the cursor: saving Stats never creates a cursor.
	SaveStats(ctx context.Context, st Stats) error
}

// ConnectionID derives the per-connection state key from the connector key:
// a SHA-256 hash, so the key itself is never stored.
func ConnectionID(connectorKey string) string {
	sum := sha256.Sum256([]byte("edgepoll/connection/v1\x00" + connectorKey))
	return hex.EncodeToString(sum[:16])
}

// HAConnectionID is where an HA instance keeps its own progress (and takes
// its lease): per connection, cluster and instance. The server keeps the
// cluster's cursor; what is stored here is only the last item this instance
// delivered, the last-processed-id it acknowledges with. It is never the
// non-HA cursor of the connection nor another instance's progress.
func HAConnectionID(conn, clusterID, instanceID string) string {
	sum := sha256.Sum256([]byte("edgepoll/ha/v1\x00" + conn + "\x00" + clusterID + "\x00" + instanceID))
	return hex.EncodeToString(sum[:16])
}
