// Package sinks is what every delivery target registers: its configuration
// type (kong-tagged fields: flag names, ilagent aliases, documented
// defaults, secrets marked secret:""), one Validate naming the field by its
// flag name, and Open, which builds the poll.Sink.
//
// cmd/edgepoll reads the command line, the environment, the --config file
// and the Lambda environment through these types; adding a target is its
// own package plus one line in cmd/edgepoll's list of registrations (the
// help text, --config keys and completion follow the registrations; a
// Lambda target also needs its parameters in template.yaml).
package sinks

import (
	"context"
	"io"
	"log/slog"

	"github.com/edgepoll/edgepoll/poll"
)

// Shared are settings that more than one target reads (one flag for all).
type Shared struct {
	Topic string `name:"topic" aliases:"edge_topic" help:"kafka, mqtt: target topic (required for kafka and mqtt)." group:"Kafka and MQTT"`
}

// Env is what a target is built with.
type Env struct {
	Log    *slog.Logger
	Stdout io.Writer
	// Secrets are the values of every secret edgepoll holds (connector keys,
	// auth values, passwords, heartbeat keys, of every connection): a
	// target that hands its environment on (the script) withholds them.
	Secrets []string
}

// Target is one target's configuration, filled by kong (or the --config
// file) and validated before anything is polled.
type Target interface {
	// Validate checks the configuration; a problem is a *poll.ConfigError
	// whose Field is the flag's long name ("http-url"), so that the caller
	// names it the way the user wrote it.
	Validate(sh Shared) error
	// Open builds the sink of a validated configuration.
	Open(ctx context.Context, sh Shared, env Env) (poll.Sink, error)
}

// Registration is how a target package makes itself known.
type Registration struct {
	// Mode is its --mode value.
	Mode string
	// Lambda: the target can be reached from an AWS Lambda function, and
	// the SAM template (template.yaml) offers it as its Mode parameter (a
	// test checks the template against the registry).
	Lambda bool
	// Reads lists the Shared flags (long names, e.g. "topic") the target
	// reads: with another --mode, setting one is a mistake (exit 2).
	Reads []string
	// New returns a fresh, empty configuration (kong fills in the flags and
	// defaults).
	New func() Target
}

// Problem is a configuration error naming the flag (its long name).
func Problem(flag, msg string) error { return &poll.ConfigError{Field: flag, Msg: msg} }
