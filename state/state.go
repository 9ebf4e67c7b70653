// Package state is what every state backend registers: its --state scheme,
// the rules for the rest of the value (one Validate), how to open it, and
// what cmd/edgepoll needs to know of it without naming it (a file on this
// machine or a shared remote store, whether a store exists, where its own
// dead letter lives). cmd/edgepoll lists the backends it is built with, one
// line each, and spells no scheme.
package state

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/edgepoll/edgepoll/poll"
)

// Backend is one --state scheme ("sqlite:PATH").
type Backend struct {
	// Scheme before the colon, and Form, how the whole value looks
	// ("sqlite:PATH"), for messages.
	Scheme, Form string
	// Validate checks the part after the colon; its message names no flag
	// (the caller does).
	Validate func(rest string) error
	// Open opens a validated store.
	Open func(ctx context.Context, rest string, log *slog.Logger) (poll.Store, error)
	// Local: the store is a file on this machine (rest is its path). Such
	// a store lasts only as long as the machine's filesystem: not inside
	// AWS Lambda, whose filesystem is gone between invocations. A remote
	// store (DynamoDB) is shared by every process that names it.
	Local bool
	// Exists reports whether the store named by rest is there already
	// (a local file); commands that must not create one ask it first.
	// nil: the store is never created by edgepoll (a remote table its
	// operator made), so it counts as existing.
	Exists func(rest string) (bool, error)
	// DeadLetter opens the dead letter the backend keeps itself, in the
	// store named by rest (--dead-letter state: SQLite a table of the same
	// database, DynamoDB the state table). nil: the backend keeps none.
	DeadLetter func(ctx context.Context, rest string, log *slog.Logger) (DeadLetter, error)
	// NotBuilt, when set, says why this binary has no such backend (the
	// Lambda bootstrap leaves the local ones out): a value naming the
	// scheme is refused with this reason instead of as an unknown scheme.
	NotBuilt string
}

// UsableInLambda reports whether the backend keeps state across Lambda
// invocations.
func (b Backend) UsableInLambda() bool { return !b.Local && b.NotBuilt == "" }

// StoreExists reports whether the store named by rest exists (see Exists).
func (b Backend) StoreExists(rest string) (bool, error) {
	if b.Exists == nil {
		return true, nil
	}
	return b.Exists(rest)
}

// FileExists is Exists for a backend whose store is the file at path.
func FileExists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	}
	return false, err
}

// LambdaBootstrapWhy is the NotBuilt reason of the local backends in the
// Lambda bootstrap (built with -tags lambda).
const LambdaBootstrapWhy = "this is the Lambda bootstrap (built with -tags lambda), which keeps no local state: Lambda's filesystem does not persist between invocations"

// LambdaBootstrapUnbuilt are the local backends the Lambda bootstrap
// leaves out (Lambda cannot keep their files; leaving SQLite out halves the
// binary), registered so that a value naming one is refused saying why.
var LambdaBootstrapUnbuilt = []Backend{
	Unbuilt("sqlite", "sqlite:PATH", LambdaBootstrapWhy),
	Unbuilt("json", "json:PATH", LambdaBootstrapWhy),
}

// Unbuilt is the registration of a local backend this binary is built
// without: scheme and form are known, everything else refuses with why.
func Unbuilt(scheme, form, why string) Backend {
	refuse := func(string) error { return fmt.Errorf("%s: %s", scheme, why) }
	return Backend{Scheme: scheme, Form: form, Local: true, NotBuilt: why, Validate: refuse,
		Open: func(_ context.Context, rest string, _ *slog.Logger) (poll.Store, error) { return nil, refuse(rest) }}
}

// DeadLetter is a dead letter: the cycle appends to it; operators list it
// and remove what a replay delivered.
type DeadLetter interface {
	poll.DeadLetter
	// List returns the records of connection conn in item order.
	List(ctx context.Context, conn string) ([]poll.DeadLetterRecord, error)
	// Remove deletes the records of conn with these item ids (delivered by
	// a replay). Unknown ids are ignored.
	Remove(ctx context.Context, conn string, ids ...int64) error
}
