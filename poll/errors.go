package poll

import (
	"errors"
	"fmt"
	"time"
)

// DeliveryError is a delivery failure with its class and a bounded reason.
//
// Reason is a short, low-cardinality token (for example "http_503",
// "timeout", "exit_status", "connect") that is safe as a metric label and a
// log field: it never carries a URL, a key or payload bytes.
type DeliveryError struct {
	Permanent bool
	Reason    string
	// Status is the HTTP status of the target's answer (0: none).
	Status int
	// RetryAfter is how long the target asked to be left alone (an HTTP
	// Retry-After on a 429 or 503; 0: it did not say). Only for a
	// retryable failure: a daemon waits at least this long before it tries
	// the item again.
	RetryAfter time.Duration
	Err        error
}

func (e *DeliveryError) Error() string {
	class := "retryable"
	if e.Permanent {
		class = "permanent"
	}
	if e.Err == nil {
		return fmt.Sprintf("%s delivery failure: %s", class, e.Reason)
	}
	return fmt.Sprintf("%s delivery failure: %s: %v", class, e.Reason, e.Err)
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// Retryable wraps err as a retryable delivery failure: the cycle stops and the
// next cycle starts again at this item.
func Retryable(reason string, err error) error {
	return &DeliveryError{Reason: reason, Err: err}
}

// Permanent wraps err as a non-retryable delivery failure: the item is logged
// and skipped, the cursor moves past it.
func Permanent(reason string, err error) error {
	return &DeliveryError{Permanent: true, Reason: reason, Err: err}
}

// IsPermanent reports whether err is a non-retryable delivery failure.
// Errors that are not DeliveryErrors are retryable: losing an item is worse
// than delivering it twice.
func IsPermanent(err error) bool {
	var de *DeliveryError
	return errors.As(err, &de) && de.Permanent
}

// RetryAfterOf returns the Retry-After of a retryable delivery error (0
// when it has none).
func RetryAfterOf(err error) time.Duration {
	var de *DeliveryError
	if errors.As(err, &de) && !de.Permanent {
		return de.RetryAfter
	}
	return 0
}

// ErrFiltered is what a sink reports for an item it passed over on purpose
// (a --filter that did not let it through): not a failure. The cycle moves
// the cursor past it (outcome "filtered"), never dead-letters it and never
// counts it as a refusal.
var ErrFiltered = errors.New("filtered out")

// IsFiltered reports whether err is ErrFiltered.
func IsFiltered(err error) bool { return errors.Is(err, ErrFiltered) }

// ReasonOf returns the bounded reason of a delivery error ("" for nil,
// "error" for an unclassified error).
func ReasonOf(err error) string {
	if err == nil {
		return ""
	}
	var de *DeliveryError
	if errors.As(err, &de) && de.Reason != "" {
		return de.Reason
	}
	return "error"
}

// Errors of the cycle and the client.
var (
	// ErrAuth is a 401 from the ilert API.
	ErrAuth = errors.New("authentication failed — check integration key")
	// ErrLeaseHeld means another run holds the lease on this connection.
	ErrLeaseHeld = errors.New("lease held by another run")
	// ErrLeaseLost means this run no longer owns the lease (expired and taken
	// over); its cursor writes are refused.
	ErrLeaseLost = errors.New("lease lost to another run")
)

// ConfigError is an invalid sink or store setting: Field names the config
// field, so the CLI can name the flag it came from.
type ConfigError struct {
	Field string
	Msg   string
}

func (e *ConfigError) Error() string { return e.Field + ": " + e.Msg }
