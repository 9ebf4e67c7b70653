// Package deadletter keeps the items edgepoll skipped as non-retryable
// (--dead-letter), so that no item is ever lost silently, and gives them
// back for `edgepoll dead-letter list|replay`.
//
// Two backends implement poll.DeadLetter:
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
// A record never holds a secret: the connection is the hash of the key,
// the error is the sink's message (no URL credentials, no auth value).
package deadletter

import (
	"context"
	"fmt"
	"strings"

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

// Parse checks a --dead-letter value: file:PATH or dynamodb:TABLE.
func Parse(spec string) (scheme, rest string, err error) {
	scheme, rest, ok := strings.Cut(spec, ":")
	switch {
	case !ok:
		return "", "", fmt.Errorf("%q: want file:PATH or dynamodb:TABLE", spec)
	case scheme == "file" && rest == "":
		return "", "", fmt.Errorf("file: needs a file path")
	case scheme == "file":
		return scheme, rest, nil
	case scheme == "dynamodb" && !dynamo.ValidTableName(rest):
		return "", "", fmt.Errorf("dynamodb: %q is not a valid table name (3-255 of A-Z a-z 0-9 _ - .)", rest)
	case scheme == "dynamodb":
		return scheme, rest, nil
	}
	return "", "", fmt.Errorf("unknown scheme %q: want file:PATH or dynamodb:TABLE", scheme)
}

// Open opens the dead letter named by spec (see Parse).
func Open(ctx context.Context, spec string) (Store, error) {
	scheme, rest, err := Parse(spec)
	if err != nil {
		return nil, err
	}
	if scheme == "file" {
		return OpenFile(rest)
	}
	return OpenDynamo(ctx, rest, nil)
}

// encode renders rec as one JSON line; decode parses one.
var (
	encode = state.EncodeDeadLetter
	decode = state.DecodeDeadLetter
)
