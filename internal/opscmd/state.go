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
	// HA, with --cluster-id: the instance's own progress.
	HA *HAJSON `json:"ha,omitempty"`
}

// HAJSON is an HA instance's progress in a StateJSON: the last-processed-id
// its next poll sends (null: none yet, or no --instance-id given).
type HAJSON struct {
	ClusterID       string  `json:"cluster_id"`
	InstanceID      *string `json:"instance_id"`
	LastProcessedID *int64  `json:"last_processed_id"`
	UpdatedAt       *string `json:"updated_at"`
}

// Instance is an HA instance's own progress (--cluster-id, --instance-id):
// the items it delivered, which its next poll acknowledges.
type Instance struct {
	ClusterID  string
	InstanceID string         // "": none given, each run is a new random one
	Progress   poll.StateInfo // HasCursor false: none yet
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

// ToStateJSON is the JSON of connection conn's state, and of its HA
// instance (nil: no HA).
func ToStateJSON(conn string, info poll.StateInfo, ha *Instance) StateJSON {
	out := StateJSON{Connection: conn, UpdatedAt: RFC3339(info.UpdatedAt), Refusals: info.Refusals,
		Lease: LeaseJSON{Held: info.Lease.Held, ExpiresAt: RFC3339(info.Lease.ExpiresAt)}}
	if info.HasCursor {
		out.Cursor = &info.Cursor
	}
	if info.Lease.Held && info.Lease.Holder != "" {
		out.Lease.Holder = &info.Lease.Holder
	}
	if ha != nil {
		out.HA = &HAJSON{ClusterID: ha.ClusterID, UpdatedAt: RFC3339(ha.Progress.UpdatedAt)}
		if ha.InstanceID != "" {
			out.HA.InstanceID = &ha.InstanceID
		}
		if ha.Progress.HasCursor {
			out.HA.LastProcessedID = &ha.Progress.Cursor
		}
	}
	return out
}

// PrintState writes `state show`'s text for connection conn of the store
// stateSpec (the --state value); ha, with --cluster-id (nil without), is the
// instance's progress (the cursor shown is then not the one used).
func PrintState(w io.Writer, stateSpec string, ha *Instance, conn string, info poll.StateInfo) {
	fmt.Fprintf(w, "state       %s\nconnection  %s\n", stateSpec, conn)
	switch {
	case !info.HasCursor:
		fmt.Fprintln(w, "cursor      none (the next poll has after-id=0)")
	default:
		fmt.Fprintf(w, "cursor      %d%s\n", info.Cursor, written(info.UpdatedAt))
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
	if ha == nil {
		return
	}
	fmt.Fprintln(w, "note        --cluster-id is set: in HA mode ilert keeps the cursor, this one is not used")
	switch p := ha.Progress; {
	case ha.InstanceID == "":
		fmt.Fprintln(w, "instance    none given (--instance-id): each run is a new instance with a random id and no progress")
	case !p.HasCursor:
		fmt.Fprintf(w, "instance    %s in cluster %s: no progress yet (its first poll sends no last-processed-id)\n", ha.InstanceID, ha.ClusterID)
	default:
		fmt.Fprintf(w, "instance    %s in cluster %s: last-processed-id %d%s\n", ha.InstanceID, ha.ClusterID, p.Cursor, written(p.UpdatedAt))
	}
}

// written is " (written T)", or "" for the zero time.
func written(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return " (written " + t.UTC().Format(time.RFC3339) + ")"
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
