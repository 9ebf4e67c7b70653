// Package opscmd is edgepoll's operator commands (cli.md, "Operator
// commands"): `state show` (one connection or a --config file's, text and
// JSON), `state set-cursor`, `reset` and `import-ilagent` under the lease,
// `dead-letter list` and `replay`, and `check`'s four checks. cmd/edgepoll
// keeps the command line: it describes each connection as a Conn (its
// flags' values, and funcs that read the key and open the store, the dead
// letter and the target as a run does) and calls the command here.
package opscmd

import (
	"fmt"
	"io"
	"time"

	"github.com/edgepoll/edgepoll/poll"
)

// StateJSON is `state show --output json` (cli.md).
type StateJSON struct {
	Connection string    `json:"connection"`
	Cursor     *int64    `json:"cursor"`
	UpdatedAt  *string   `json:"updated_at"`
	Lease      LeaseJSON `json:"lease"`
	Refusals   int       `json:"refusals"`
}

// LeaseJSON is the lease of a StateJSON.
type LeaseJSON struct {
	Held      bool    `json:"held"`
	Holder    *string `json:"holder"`
	ExpiresAt *string `json:"expires_at"`
}

// FleetStateJSON is one connection of `state show --config FILE --output
// json`: its name, then what state show says of one connection.
type FleetStateJSON struct {
	Name string `json:"name"`
	StateJSON
}

// RFC3339 is t in UTC as RFC 3339, nil for the zero time (JSON null).
func RFC3339(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339)
	return &s
}

// ToStateJSON is the JSON of connection conn's state.
func ToStateJSON(conn string, info poll.StateInfo) StateJSON {
	out := StateJSON{Connection: conn, UpdatedAt: RFC3339(info.UpdatedAt), Refusals: info.Refusals,
		Lease: LeaseJSON{Held: info.Lease.Held, ExpiresAt: RFC3339(info.Lease.ExpiresAt)}}
	if info.HasCursor {
		out.Cursor = &info.Cursor
	}
	if info.Lease.Held && info.Lease.Holder != "" {
		out.Lease.Holder = &info.Lease.Holder
	}
	return out
}

// PrintState writes `state show`'s text for connection conn of the store
// stateSpec (the --state value); clusterID says --cluster-id is set (the
// cursor shown is then not the one used).
func PrintState(w io.Writer, stateSpec string, clusterID bool, conn string, info poll.StateInfo) {
	fmt.Fprintf(w, "state       %s\nconnection  %s\n", stateSpec, conn)
	switch {
	case !info.HasCursor:
		fmt.Fprintln(w, "cursor      none (the next poll has after-id=0)")
	case info.UpdatedAt.IsZero():
		fmt.Fprintf(w, "cursor      %d\n", info.Cursor)
	default:
		fmt.Fprintf(w, "cursor      %d (written %s)\n", info.Cursor, info.UpdatedAt.UTC().Format(time.RFC3339))
	}
	switch {
	case !info.Lease.Held:
		fmt.Fprintln(w, "lease       free")
	case info.Lease.ExpiresAt.IsZero():
		fmt.Fprintf(w, "lease       held by %s\n", orUnknown(info.Lease.Holder))
	default:
		fmt.Fprintf(w, "lease       held by %s until %s\n", orUnknown(info.Lease.Holder), info.Lease.ExpiresAt.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(w, "refusals    %d\n", info.Refusals)
	if clusterID {
		fmt.Fprintln(w, "note        --cluster-id is set: in HA mode ilert keeps the cursor, this one is not used")
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "another run"
	}
	return s
}

// Was is a cursor for a log line: the cursor, or "none".
func Was(cur int64, has bool) any {
	if !has {
		return "none"
	}
	return cur
}
