package stdout

import (
	"context"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/sinks"
)

// Registration makes --mode stdout known to edgepoll.
var Registration = sinks.Registration{Mode: "stdout", Lambda: true, New: func() sinks.Target { return &Options{} }}

// Options: the stdout target has no settings.
type Options struct{}

// Validate implements sinks.Target.
func (*Options) Validate(sinks.Shared) error { return nil }

// Open implements sinks.Target.
func (*Options) Open(_ context.Context, _ sinks.Shared, env sinks.Env) (poll.Sink, error) {
	return poll.OneByOne(New(env.Stdout)), nil
}
