package opscmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/state"
	"github.com/edgepoll/edgepoll/state/deadletter"
)

// Conn is what an operator command needs of one connection. cmd/edgepoll
// builds it from the connection's flags: the values as the operator wrote
// them, and funcs that read the key and open the store, the dead letter and
// the target as a run does.
type Conn struct {
	State      string // --state, as given
	Mode       string // --mode, as given
	DeadLetter string // --dead-letter, as given
	APIURL     string // --api-url
	ClusterID  string // --cluster-id: ilert keeps the cursor (HA)
	InstanceID string // --instance-id ("": a random one each run)
	RunID      string // this invocation's id ("run-<hex>"), the lease holder's suffix
	Log        *slog.Logger

	// Key reads the connector key; StateKey is the connection's state key
	// for it.
	Key      func(ctx context.Context) (string, error)
	StateKey func(key string) string
	// ParseState is --state's backend and the rest after its scheme; its
	// error is the bare reason (the caller's Usage makes it an error).
	ParseState func() (b state.Backend, rest string, err error)
	// OpenStore opens --state; OpenDeadLetter --dead-letter (nil for none);
	// NewSink builds --mode's target writing to stdout.
	OpenStore      func(ctx context.Context) (poll.Store, error)
	OpenDeadLetter func(ctx context.Context) (deadletter.Store, error)
	NewSink        func(ctx context.Context, stdout io.Writer) (poll.Sink, error)
	// Usage makes a configuration error (exit 2) of msg, IsUsage tells one:
	// the caller's class, which the errors of the funcs above carry.
	Usage   func(msg string) error
	IsUsage func(err error) bool
}

// ErrReported is the error of a command that failed and has said why (on
// stderr or in the log): exit 1, with nothing more to print.
var ErrReported = errors.New("failed (reported)")

// holder is the lease holder of command what ("edgepoll-set-cursor-<hex>").
func (c *Conn) holder(what string) string {
	return "edgepoll-" + what + "-" + strings.TrimPrefix(c.RunID, "run-")
}

// connection is the state key of the configured connector key.
func (c *Conn) connection(ctx context.Context) (string, error) {
	key, err := c.Key(ctx)
	if err != nil {
		return "", err
	}
	return c.StateKey(key), nil
}

// storeMissing reports whether the --state store does not exist
// (state.Backend.Exists), and for a local one its path.
func (c *Conn) storeMissing() (path string, missing bool, err error) {
	b, rest, err := c.ParseState()
	if err != nil {
		return "", false, c.Usage("--state: " + err.Error())
	}
	exists, err := b.StoreExists(rest)
	if err != nil {
		return "", false, fmt.Errorf("--state %s: %v", c.State, err)
	}
	if b.Local {
		path = rest
	}
	return path, !exists, nil
}

// stateMissing is the error of a state store that does not exist (a
// typo'd --state naming a local file): commands that read or repair state
// refuse it rather than take it as "no cursor" or create a fresh store.
func (c *Conn) stateMissing() error {
	_, missing, err := c.storeMissing()
	if err != nil || !missing {
		return err
	}
	return fmt.Errorf("--state %s: the state store does not exist (a typo in --state? a run creates it; state set-cursor --create creates it with the cursor)", c.State)
}

// inspect reads connection conn's state without the lease and without
// creating anything: a local state file that does not exist is an error.
func (c *Conn) inspect(ctx context.Context, conn string) (poll.StateInfo, error) {
	infos, err := c.inspectAll(ctx, conn)
	if err != nil {
		return poll.StateInfo{}, err
	}
	return infos[0], nil
}

// inspectAll is inspect of several state keys of one store.
func (c *Conn) inspectAll(ctx context.Context, conns ...string) ([]poll.StateInfo, error) {
	if err := c.stateMissing(); err != nil {
		return nil, err
	}
	store, err := c.OpenStore(ctx)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	insp, ok := store.(poll.Inspector)
	if !ok {
		return nil, fmt.Errorf("--state %s: this backend cannot be inspected", c.State)
	}
	infos := make([]poll.StateInfo, len(conns))
	for i, conn := range conns {
		if infos[i], err = insp.Inspect(ctx, conn); err != nil {
			return nil, err
		}
	}
	return infos, nil
}

// ha reports whether --cluster-id is set.
func (c *Conn) ha() bool { return c.ClusterID != "" }
