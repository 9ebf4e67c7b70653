package poll

import (
	"context"
	"fmt"
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

// inherit is the position a connection without a cursor of its own starts
// from: the furthest cursor stored under the state keys of Cycle.Inherit
// (the key's plain cursor, the other connections on the key), read without
// their leases. It is saved at once as the connection's own cursor, so a
// later cycle never inherits again from a cursor that moved meanwhile (the
// items in between would be missed). false: none of them has a cursor.
func (r *run) inherit(ctx context.Context) (Position, bool, error) {
	if len(r.c.Inherit) == 0 || r.c.HA != nil {
		return Position{}, false, nil
	}
	insp, ok := r.c.Store.(Inspector)
	if !ok {
		return Position{}, false, nil
	}
	var best Position
	from := ""
	for _, id := range r.c.Inherit {
		info, err := insp.Inspect(ctx, id)
		if err != nil {
			return Position{}, false, fmt.Errorf("reading the cursor of %s: %w", id, err)
		}
		if info.HasCursor && (from == "" || info.Cursor > best.Cursor) {
			best, from = Position{Cursor: info.Cursor}, id
		}
	}
	if from == "" {
		return Position{}, false, nil
	}
	if err := r.lease.Save(ctx, best); err != nil {
		return Position{}, false, fmt.Errorf("saving the inherited cursor: %w", err)
	}
	r.log.Info("no cursor of its own yet: starting from the cursor stored for its connector key (nothing is replayed)",
		"cursor", best.Cursor, "from", from)
	return best, true, nil
}
