// Package deadletter keeps the items edgepoll skipped as non-retryable
// (--dead-letter), so that no item is ever lost silently, and gives them
// back for `edgepoll dead-letter list|replay`.
//
// Two backends here implement poll.DeadLetter:
//
//   - file:PATH appends one JSON line per skipped item and fsyncs it (and,
//     when it created the file, its directory) before Append returns:
//     {"id":..,"reason":..,"status":..,"error":..,"skipped_at":..,
//     "connection":..,"payload":..}. The payload is written verbatim (a
//     payload spread over several lines is compacted onto one).
//   - dynamodb:TABLE puts one item per skipped item under a key of its own,
//     pk "deadletter#<connection>#<item id, 20 digits>", so records sort in
//     item order per connection; the state table will do.
//
// --dead-letter state (the default) uses the state backend's own: SQLite a
// table of the state database (state/sqlite.DeadLetter), DynamoDB the state
// table, JSON the file PATH.deadletter.jsonl beside the state file.
//
// A record never holds a secret: the connection is the hash of the key,
// the error is the sink's message (no URL credentials, no auth value).
package deadletter

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/state"
	"github.com/edgepoll/edgepoll/state/dynamo"
)

// Record is one dead-lettered item.
type Record = poll.DeadLetterRecord

// Store is a dead letter: the cycle appends to it; operators list it and
// remove what a replay delivered.
type Store = state.DeadLetter

// Dynamo is the dynamodb:TABLE dead letter (the state backend's own).
type Dynamo = dynamo.DeadLetter

// OpenDynamo checks the table (string partition key pk). c nil: region,
// credentials and endpoint as for --state dynamodb:TABLE.
var OpenDynamo = dynamo.OpenDeadLetter

// LocalFile returns the path of a --dead-letter value that names a file on
// this machine (file:PATH), which lasts only as long as its filesystem (not
// inside AWS Lambda).
func LocalFile(spec string) (path string, ok bool) {
	scheme, rest, err := Parse(spec)
	if err != nil || scheme != "file" {
		return "", false
	}
	return rest, true
}

// Values of --dead-letter besides file:PATH and dynamodb:TABLE.
const (
	// InState keeps the records in the state backend itself (the
	// default): see OpenInState.
	InState = "state"
	// None keeps nothing: an item skipped as non-retryable is gone (the
	// reference agent's behaviour, chosen explicitly).
	None = "none"
)

const want = "want state (the default: in the state store), none, file:PATH or dynamodb:TABLE"

// Parse checks a --dead-letter value: state, none, file:PATH or
// dynamodb:TABLE. For state and none, scheme is the value and rest "".
func Parse(spec string) (scheme, rest string, err error) {
	if spec == InState || spec == None {
		return spec, "", nil
	}
	scheme, rest, ok := strings.Cut(spec, ":")
	switch {
	case !ok:
		return "", "", fmt.Errorf("%q: %s", spec, want)
	case scheme == "file" && rest == "":
		return "", "", fmt.Errorf("file: needs a file path")
	case scheme == "file":
		return scheme, rest, nil
	case scheme == "dynamodb" && !dynamo.ValidTableName(rest):
		return "", "", fmt.Errorf("dynamodb: %q is not a valid table name (3-255 of A-Z a-z 0-9 _ - .)", rest)
	case scheme == "dynamodb":
		return scheme, rest, nil
	}
	return "", "", fmt.Errorf("unknown scheme %q: %s", scheme, want)
}

// Open opens the dead letter named by spec: file:PATH or dynamodb:TABLE
// (state and none are resolved by the caller: OpenInState).
func Open(ctx context.Context, spec string) (Store, error) {
	scheme, rest, err := Parse(spec)
	if err != nil {
		return nil, err
	}
	switch scheme {
	case "file":
		return OpenFile(rest)
	case "dynamodb":
		return OpenDynamo(ctx, rest, nil)
	}
	return nil, fmt.Errorf("--dead-letter %s: not a store to open (resolve it with OpenInState)", scheme)
}

// besideSuffix names the interim dead letter of a local state backend that
// keeps none itself yet: PATH.deadletter.jsonl beside the state file.
const besideSuffix = ".deadletter.jsonl"

// InStateName says where --dead-letter state keeps the records of the
// store b names with rest, for messages: the state store itself, or the
// file beside a local state file.
func InStateName(b state.Backend, rest string) string {
	if b.DeadLetter == nil && b.Local {
		return "file:" + rest + besideSuffix
	}
	return "in the state store " + b.Scheme + ":" + rest
}

// OpenInState opens the dead letter of --dead-letter state: the one the
// backend keeps itself (state.Backend.DeadLetter; a remote one connects on
// first use: the state store checked it already, and a run that skips
// nothing makes no call), else beside a local state file the file
// PATH.deadletter.jsonl (records carry their connection). A local backend
// that keeps its own (SQLite: a table) still lists, replays and removes
// the records an earlier version wrote to PATH.deadletter.jsonl; new ones
// go to its own. A remote backend
// that keeps none fails the first Append, so the item is not skipped.
func OpenInState(ctx context.Context, b state.Backend, rest string, log *slog.Logger) (Store, error) {
	switch {
	case b.DeadLetter != nil && b.Local:
		own, err := b.DeadLetter(ctx, rest, log)
		if err != nil {
			return nil, err
		}
		// The interim file of earlier versions keeps what they wrote.
		legacy, err := OpenFile(rest + besideSuffix)
		if err != nil {
			own.Close()
			return nil, err
		}
		return &withLegacy{Store: own, legacy: legacy}, nil
	case b.DeadLetter != nil:
		return &lazy{open: func(ctx context.Context) (Store, error) { return b.DeadLetter(ctx, rest, log) }}, nil
	case b.Local:
		return OpenFile(rest + besideSuffix)
	}
	return &lazy{open: func(context.Context) (Store, error) {
		return nil, fmt.Errorf("--dead-letter state: the %s state backend keeps no dead letter; set --dead-letter file:PATH, dynamodb:TABLE or none", b.Scheme)
	}}, nil
}

// withLegacy is a backend's own dead letter together with the interim
// PATH.deadletter.jsonl of earlier versions: appends go to the own one,
// List returns both (the own record of an item wins), Remove removes from
// both.
type withLegacy struct {
	Store
	legacy *File
}

// Unwrap returns the backend's own dead letter.
func (w *withLegacy) Unwrap() Store { return w.Store }

func (w *withLegacy) List(ctx context.Context, conn string) ([]Record, error) {
	own, err := w.Store.List(ctx, conn)
	if err != nil {
		return nil, err
	}
	old, err := w.legacy.List(ctx, conn)
	if err != nil || len(old) == 0 {
		return own, err
	}
	have := map[int64]bool{}
	for _, r := range own {
		have[r.ID] = true
	}
	for _, r := range old {
		if !have[r.ID] {
			own = append(own, r)
		}
	}
	sort.SliceStable(own, func(i, j int) bool { return own[i].ID < own[j].ID })
	return own, nil
}

func (w *withLegacy) Remove(ctx context.Context, conn string, ids ...int64) error {
	if err := w.Store.Remove(ctx, conn, ids...); err != nil {
		return err
	}
	return w.legacy.Remove(ctx, conn, ids...)
}

// lazy opens its Store on first use (and again after a failed open).
type lazy struct {
	mu   sync.Mutex
	open func(context.Context) (Store, error)
	s    Store
}

func (l *lazy) get(ctx context.Context) (Store, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.s == nil {
		s, err := l.open(ctx)
		if err != nil {
			return nil, err
		}
		l.s = s
	}
	return l.s, nil
}

func (l *lazy) Append(ctx context.Context, conn string, rec Record) error {
	s, err := l.get(ctx)
	if err != nil {
		return err
	}
	return s.Append(ctx, conn, rec)
}

func (l *lazy) List(ctx context.Context, conn string) ([]Record, error) {
	s, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return s.List(ctx, conn)
}

func (l *lazy) Remove(ctx context.Context, conn string, ids ...int64) error {
	s, err := l.get(ctx)
	if err != nil {
		return err
	}
	return s.Remove(ctx, conn, ids...)
}

func (l *lazy) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.s == nil {
		return nil
	}
	return l.s.Close()
}

// encode renders rec as one JSON line; decode parses one.
var (
	encode = state.EncodeDeadLetter
	decode = state.DecodeDeadLetter
)
