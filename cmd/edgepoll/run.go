package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"

	"github.com/edgepoll/edgepoll/internal/runner"
	"github.com/edgepoll/edgepoll/poll"
)

// newRunner is the runner of cli's connections: its --config file's, else
// the one its flags give (a fleet of one). owner names the run in leases.
func newRunner(cli *CLI, owner string, log *slog.Logger, stdout io.Writer, lambda bool) *runner.Runner {
	opts := runner.Options{Owner: owner, Log: log, Stdout: stdout, MaxParallel: cli.MaxParallel,
		Loop: cli.Loop, Port: cli.Port, ListenAddr: cli.ListenAddr, MetricsFile: cli.MetricsFile,
		Lambda: lambda, IsConfigError: isUsageError}
	if cli.fleet == nil {
		return runner.NewOne(runnerConn("", cli, lambda), opts)
	}
	conns := make([]*runner.Conn, len(cli.fleet))
	for i, fc := range cli.fleet {
		conns[i] = runnerConn(fc.Name, fc.CLI, lambda)
	}
	return runner.New(conns, opts)
}

// runnerConn is connection cli (named name in a --config file) as the
// runner sets it up: its settings, and how its key, store, dead letter and
// target are built from its flags; outside Lambda, the reference agent's
// cursor as its start (seedFromIlagent).
func runnerConn(name string, cli *CLI, lambda bool) *runner.Conn {
	c := &runner.Conn{
		Name: name, Mode: cli.Mode, APIURL: cli.APIURL, State: cli.State, DeadLetter: cli.DeadLetter,
		SkipLimit: cli.SkipLimit, ClusterID: cli.ClusterID, InstanceID: cli.InstanceID, Heartbeat: cli.Heartbeat,
		PollInterval: cli.PollInterval.D(), StandbyInterval: cli.StandbyInterval.D(),
		Key: func(ctx context.Context) (string, error) {
			key, err := connectorKey(ctx, cli)
			if err == nil && !slices.Contains(cli.secrets, key) { // the script target withholds it
				cli.secrets = append(slices.Clip(cli.secrets), key)
			}
			return key, err
		},
		StateKeys: func(key string) (string, *poll.FanOut) { return stateKeys(cli, key) },
		OpenStore: func(ctx context.Context, log *slog.Logger) (poll.Store, error) { return openStore(ctx, cli, log) },
		OpenDeadLetter: func(ctx context.Context) (poll.DeadLetter, error) {
			dl, err := openDeadLetterStore(ctx, cli)
			if err != nil || dl == nil {
				return nil, errDeadLetter(err)
			}
			return dl, nil
		},
		NewSink: func(ctx context.Context, log *slog.Logger, stdout io.Writer) (poll.Sink, error) {
			return newSink(ctx, cli, log, stdout)
		},
	}
	if !lambda {
		c.Seed = func(ctx context.Context, log *slog.Logger, store poll.Store, key string) error {
			return seedFromIlagent(ctx, log, cli, store, key)
		}
	}
	return c
}

// errDeadLetter names --dead-letter in the error of opening it (nil: nil).
func errDeadLetter(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("--dead-letter: %w", err)
}

func isUsageError(err error) bool {
	var ue *UsageError
	return errors.As(err, &ue)
}

func runID() string { return runner.RunID() }
