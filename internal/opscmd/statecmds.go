package opscmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/edgepoll/edgepoll/poll"
)

// Show writes the connection's state (`state show`) to w: PrintState's
// text, or with asJSON its StateJSON on one line. The state is read
// without the lease and nothing is created.
func (c *Conn) Show(ctx context.Context, w io.Writer, asJSON bool) error {
	conn, info, ha, err := c.read(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		b, _ := json.Marshal(ToStateJSON(conn, info, ha))
		fmt.Fprintf(w, "%s\n", b)
		return nil
	}
	PrintState(w, c.State, ha, conn, info)
	return nil
}

// read is the connection's state key and state, and with --cluster-id
// its instance's progress (nil without).
func (c *Conn) read(ctx context.Context) (string, poll.StateInfo, *Instance, error) {
	conn, err := c.connection(ctx)
	if err != nil {
		return "", poll.StateInfo{}, nil, err
	}
	if !c.ha() {
		info, err := c.inspect(ctx, conn)
		return conn, info, nil, err
	}
	ha := &Instance{ClusterID: c.ClusterID, InstanceID: c.InstanceID}
	keys := []string{conn}
	if c.InstanceID != "" {
		keys = append(keys, poll.HAConnectionID(conn, c.ClusterID, c.InstanceID))
	}
	infos, err := c.inspectAll(ctx, keys...)
	if err != nil {
		return "", poll.StateInfo{}, nil, err
	}
	if len(infos) > 1 {
		ha.Progress = infos[1]
	}
	return conn, infos[0], ha, nil
}

// Named is one connection of a --config file.
type Named struct {
	Name  string // its name
	Label string // how an error names it ("connections[1] (b)")
	Conn  *Conn
}

// ShowAll writes the state of every connection of a --config file (`state
// show --config FILE`): text, one block each headed by its name, or with
// asJSON an array of FleetStateJSON. A connection whose state cannot be
// read is reported on stderr and the others are still listed; the error is
// then ErrReported.
func ShowAll(ctx context.Context, stdout, stderr io.Writer, conns []Named, asJSON bool) error {
	var failed error
	all := []FleetStateJSON{}
	for i, n := range conns {
		conn, info, ha, err := n.Conn.read(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "edgepoll: error: %s: %v\n", n.Label, err)
			failed = ErrReported
			continue
		}
		if asJSON {
			all = append(all, FleetStateJSON{Name: n.Name, StateJSON: ToStateJSON(conn, info, ha)})
			continue
		}
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		fmt.Fprintf(stdout, "name        %s\n", n.Name)
		PrintState(stdout, n.Conn.State, ha, conn, info)
	}
	if asJSON {
		b, _ := json.Marshal(all)
		fmt.Fprintf(stdout, "%s\n", b)
	}
	return failed
}

// SetCursor sets the cursor to n under the lease (`state set-cursor N`):
// the next cycle polls with after-id=n. With create a local state file
// that does not exist is created, without it that is an error.
func (c *Conn) SetCursor(ctx context.Context, stderr io.Writer, n int64, create bool) error {
	if n < 0 {
		return c.Usage("state set-cursor: N must be 0 or more")
	}
	return c.withLease(ctx, stderr, "set-cursor", create, func(set poll.CursorSetter, cur int64, has bool) error {
		if err := set.SetCursor(ctx, n); err != nil {
			return err
		}
		c.Log.Info("cursor set: the next poll has after-id="+fmt.Sprint(n), "was", Was(cur, has), "cursor", n)
		return nil
	})
}

// Reset forgets the cursor under the lease (`state reset`): the next poll
// has after-id=0.
func (c *Conn) Reset(ctx context.Context, stderr io.Writer) error {
	return c.withLease(ctx, stderr, "reset", false, func(set poll.CursorSetter, cur int64, has bool) error {
		if err := set.ResetCursor(ctx); err != nil {
			return err
		}
		c.Log.Info("cursor forgotten: the next poll has after-id=0", "was", Was(cur, has))
		return nil
	})
}

// ReadIlagent reads the reference agent's cursor for connector key key
// from its SQLite file path (ilagent.ReadCursor).
type ReadIlagent func(ctx context.Context, path, key string) (int64, error)

// ImportIlagent sets the cursor to the reference agent's, read from its
// file path, under the lease (`state import-ilagent PATH`). A cursor is
// moved backwards only with force.
func (c *Conn) ImportIlagent(ctx context.Context, stderr io.Writer, path string, force bool, read ReadIlagent) error {
	key, err := c.Key(ctx)
	if err != nil {
		return err
	}
	theirs, err := read(ctx, path, key)
	if err != nil {
		return fmt.Errorf("state import-ilagent: %w", err)
	}
	return c.withLease(ctx, stderr, "import-ilagent", false, func(set poll.CursorSetter, cur int64, has bool) error {
		switch {
		case has && theirs == cur:
			c.Log.Info("cursor already at the reference agent's", "cursor", cur)
			return nil
		case has && theirs < cur && !force:
			return fmt.Errorf("refusing to move the cursor backwards from %d to the reference agent's %d (that would deliver %d items again; --force to do it anyway)", cur, theirs, cur-theirs)
		}
		if err := set.SetCursor(ctx, theirs); err != nil {
			return err
		}
		c.Log.Info("cursor imported from the reference agent", "file", path, "was", Was(cur, has), "cursor", theirs)
		return nil
	})
}

// leaseFunc changes the cursor while the lease is held: set rewrites it;
// cur and has are the cursor as the lease found it.
type leaseFunc func(set poll.CursorSetter, cur int64, has bool) error

// withLease runs fn holding the connection's lease, as a run would take it.
// If another run holds it: that is said on stderr, naming the holder,
// nothing is changed and the error is ErrReported. A local state file that
// does not exist is an error naming it, and nothing is created, unless
// create. Other errors are prefixed with what (the command).
func (c *Conn) withLease(ctx context.Context, stderr io.Writer, what string, create bool, fn leaseFunc) error {
	if !create {
		if err := c.stateMissing(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	conn, err := c.connection(ctx)
	if err != nil {
		return err
	}
	store, err := c.OpenStore(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	l, err := store.Acquire(ctx, conn, c.holder(what))
	if errors.Is(err, poll.ErrLeaseHeld) {
		fmt.Fprintf(stderr, "edgepoll: error: %s: the lease is taken: %v; nothing changed (stop that run, or wait until it is done)\n", what, err)
		return ErrReported
	}
	if err != nil {
		return err
	}
	set, ok := l.(poll.CursorSetter)
	if !ok {
		_ = l.Release(ctx)
		return fmt.Errorf("%s: this state backend cannot rewrite the cursor", what)
	}
	cur, has, err := l.Load(ctx)
	if err == nil {
		err = fn(set, cur.Cursor, has)
	}
	if rerr := l.Release(ctx); err == nil && rerr != nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if c.ha() {
		c.Log.Warn("--cluster-id is set: in HA mode ilert keeps the cursor, the one in --state is not used")
	}
	return nil
}
