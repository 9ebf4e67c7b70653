package poll

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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

// Lease is a held lease on one connection; cursor access goes through it so
// that a backend can fence writes by a run that lost its lease.
type Lease interface {
	// Load returns the stored cursor (0, false when none was stored yet).
	Load(ctx context.Context) (cursor int64, ok bool, err error)
	// Save persists cursor durably against a process crash (SIGKILL) before
	// it returns. The cursor never moves backwards: saving a value lower than
	// the stored one leaves the stored one. A backend that detects the lease
	// was lost returns ErrLeaseLost (wrapped).
	Save(ctx context.Context, cursor int64) error
	// Sync makes the saved cursor durable against power loss (fsync).
	// The cycle starts it at the end of each batch and lets it overlap the
	// next batch: Sync must be safe to run concurrently with Save (never
	// with another Sync or Release).
	Sync(ctx context.Context) error
	// Release gives the lease up. Safe to call once after any error.
	Release(ctx context.Context) error
}

// ConnectionID derives the per-connection state key from the connector key:
// a SHA-256 hash, so the key itself is never stored.
func ConnectionID(connectorKey string) string {
	sum := sha256.Sum256([]byte("edgepoll/connection/v1\x00" + connectorKey))
	return hex.EncodeToString(sum[:16])
}
