package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/sinks"
	httpsink "github.com/edgepoll/edgepoll/sinks/http"
	kafkasink "github.com/edgepoll/edgepoll/sinks/kafka"
	mqttsink "github.com/edgepoll/edgepoll/sinks/mqtt"
	scriptsink "github.com/edgepoll/edgepoll/sinks/script"
	stdoutsink "github.com/edgepoll/edgepoll/sinks/stdout"
	"github.com/edgepoll/edgepoll/state"
	"github.com/edgepoll/edgepoll/state/dynamo"
)

// stores are the state backends (--state) this binary is built with:
// adding one is its package under state/ (a state.Backend that passes the
// contract tests) plus one line here or in stores_local.go.
var stores = append([]state.Backend{
	dynamo.Backend,
}, localStores...)

// storeOpenTimeout bounds opening the state store (DynamoDB's DescribeTable
// with the SDK's retries, a locked SQLite file): a store that never answers
// fails the run instead of hanging it.
const storeOpenTimeout = 30 * time.Second

// openStore opens the --state backend.
func openStore(ctx context.Context, cli *CLI, log *slog.Logger) (poll.Store, error) {
	b, rest, err := parseState(cli.State)
	if err != nil {
		return nil, &UsageError{Msg: "--state: " + err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, storeOpenTimeout)
	defer cancel()
	return b.Open(ctx, rest, log)
}

// targets are edgepoll's delivery targets (--mode). Adding one is its own
// package under sinks/ (a configuration type implementing sinks.Target)
// plus one line here.
var targets = []sinks.Registration{
	httpsink.Registration,
	kafkasink.Registration,
	mqttsink.Registration,
	scriptsink.Registration,
	stdoutsink.Registration,
}

// modes lists the --mode values.
func modes() []string {
	out := make([]string, len(targets))
	for i, r := range targets {
		out[i] = r.Mode
	}
	return out
}

// newCLI returns an empty CLI with a fresh configuration of every target
// (kong fills them through Plugins).
func newCLI() *CLI {
	cli := &CLI{targets: map[string]sinks.Target{}}
	for _, r := range targets {
		t := r.New()
		cli.targets[r.Mode] = t
		cli.Plugins = append(cli.Plugins, t)
	}
	return cli
}

// newSink builds the --mode target.
func newSink(ctx context.Context, cli *CLI, log *slog.Logger, stdout io.Writer) (poll.Sink, error) {
	t := cli.targets[cli.Mode]
	if t == nil {
		return nil, &UsageError{Msg: fmt.Sprintf("--mode: unknown mode %q", cli.Mode)}
	}
	s, err := t.Open(ctx, cli.Shared, sinks.Env{Log: log, Stdout: stdout, Secrets: cli.secrets})
	var ce *poll.ConfigError
	if errors.As(err, &ce) {
		return nil, &UsageError{Msg: "--" + ce.Field + ": " + ce.Msg}
	}
	if err != nil {
		return nil, err
	}
	return cli.Route.Wrap(s), nil // --filter, --transform
}
