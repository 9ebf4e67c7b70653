package poll

import (
	"errors"
	"time"
)

// Outcome is what became of one item, as reported to an Observer (its
// string is the metric label outcome).
type Outcome string

// Outcomes of one item.
const (
	OutcomeDelivered Outcome = "delivered"
	OutcomeSkipped   Outcome = "skipped"  // permanent failure, cursor moved past it
	OutcomeFailed    Outcome = "failed"   // retryable failure, retried next cycle
	OutcomeFiltered  Outcome = "filtered" // passed over by a filter (ErrFiltered), cursor moved past it
	OutcomeStale     Outcome = "stale"    // in a poll answer at or below the cursor: not delivered
)

// Observer receives what a cycle does, for metrics. Calls are cheap and
// never block; implementations must be safe for concurrent use.
type Observer interface {
	// Polled: result is "ok" or the PollError reason.
	Polled(result string, items int, d time.Duration)
	// Item: outcome is one of the Outcome constants; reason is "" when
	// delivered. d runs from the hand-over to the sink to the report.
	Item(outcome Outcome, reason string, d time.Duration)
	// Cursor: the cursor was persisted at this value.
	Cursor(cursor int64)
	// Role: the HA role of the last poll ("leader", "standby", "" without HA).
	Role(role string)
	// DeadLettered: a skipped item was written to the dead letter.
	DeadLettered()
}

// NoObserver observes nothing.
var NoObserver Observer = nopObserver{}

type nopObserver struct{}

func (nopObserver) Polled(string, int, time.Duration)   {}
func (nopObserver) Item(Outcome, string, time.Duration) {}
func (nopObserver) Cursor(int64)                        {}
func (nopObserver) Role(string)                         {}
func (nopObserver) DeadLettered()                       {}

// Kind is the class of a failed cycle (its string is the metric label and
// the log's wording). Every kind makes a one-shot run exit 1.
type Kind string

// Kinds of a failed cycle.
const (
	KindAuth     Kind = "auth"     // the API refused the key
	KindPoll     Kind = "poll"     // the poll failed (or answered an unusable item)
	KindDelivery Kind = "delivery" // the target failed retryably, or the skip limit
	KindState    Kind = "state"    // the state store (lease, cursor, dead letter)
	KindDeadline Kind = "deadline" // stopped before any progress (RequireProgress)
	KindOpen     Kind = "open"     // a fleet member's sink could not be built
)

// Reason is a bounded token saying why a cycle failed: one of the constants
// below, a PollError reason, or a DeliveryError reason.
type Reason string

// Reasons the cycle itself names.
const (
	ReasonLease      Reason = "lease"       // taking the lease
	ReasonLoad       Reason = "load"        // loading the cursor or the statistics
	ReasonSave       Reason = "save"        // saving the cursor
	ReasonSync       Reason = "sync"        // syncing the cursor
	ReasonDeadLetter Reason = "dead_letter" // writing the dead letter
	ReasonSkipLimit  Reason = "skip_limit"  // a refusal beyond --skip-limit
	ReasonBadItem    Reason = "bad_item"    // an unusable item in a poll answer
	ReasonNoProgress Reason = "no_progress" // RequireProgress
	ReasonUnreported Reason = "unreported"  // the sink returned without reporting an item
	ReasonCanceled   Reason = "canceled"    // in-flight deliveries aborted
	ReasonOpen       Reason = "open"        // KindOpen
	// A Lambda invocation that found the lease held by a run that stopped
	// renewing it (killed without releasing it).
	ReasonLeaseStalled Reason = "lease_stalled"
)

// CycleError is a failed cycle: its Kind, a bounded Reason and the error.
type CycleError struct {
	Kind   Kind
	Reason Reason
	Err    error
}

func (e *CycleError) Error() string { return e.Err.Error() }

func (e *CycleError) Unwrap() error { return e.Err }

// DeliveryFailed reports whether err is a cycle that polled but failed
// delivering (a retryable delivery failure, the skip limit): the loop
// retries it after the poll interval, not after a backoff.
func DeliveryFailed(err error) bool { return KindOf(err) == KindDelivery }

// KindOf returns the Kind of a CycleError ("" for any other error).
func KindOf(err error) Kind {
	var ce *CycleError
	if errors.As(err, &ce) {
		return ce.Kind
	}
	return ""
}
