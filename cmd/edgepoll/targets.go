package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/alecthomas/kong"
	"github.com/posener/complete"
	"github.com/willabides/kongplete"

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
var stores = append(localStores[:len(localStores):len(localStores)],
	dynamo.Backend,
)

// storeOpenTimeout bounds opening the state store (DynamoDB's DescribeTable
// with the SDK's retries, a locked SQLite file): a store that never answers
// fails the run instead of hanging it.
const storeOpenTimeout = 30 * time.Second

// parseState finds the backend of a --state value and checks the rest.
func parseState(s string) (b state.Backend, rest string, err error) {
	scheme, rest, ok := strings.Cut(s, ":")
	forms := stateForms()
	for _, st := range stores {
		if ok && st.Scheme == scheme {
			b = st
		}
	}
	switch {
	case !ok:
		return b, "", fmt.Errorf("%q: want %s", s, strings.Join(forms, ", "))
	case b.Scheme == "":
		return b, "", fmt.Errorf("unknown scheme %q: want %s", scheme, strings.Join(forms, ", "))
	case b.NotBuilt != "":
		return state.Backend{}, "", fmt.Errorf("%s: %s; use %s", scheme, b.NotBuilt, strings.Join(forms, " or "))
	}
	return b, rest, b.Validate(rest)
}

// lambdaForms lists the --state forms usable inside AWS Lambda.
func lambdaForms() string {
	var forms []string
	for _, st := range stores {
		if st.UsableInLambda() {
			forms = append(forms, st.Form)
		}
	}
	return orList(forms)
}

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

// registryVars are the lists in the help text that follow the registries:
// ${modes} (the targets) and ${state_forms} (the built state backends).
func registryVars() kong.Vars {
	return kong.Vars{"modes": orList(modes()), "state_forms": orList(stateForms())}
}

// stateForms lists the forms of the --state backends this binary has.
func stateForms() []string {
	var forms []string
	for _, st := range stores {
		if st.NotBuilt == "" {
			forms = append(forms, st.Form)
		}
	}
	return forms
}

// orList joins "a, b or c".
func orList(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// completionOptions complete --mode with the registered targets and
// --state with the backends' schemes.
func completionOptions() []kongplete.Option {
	schemes := make([]string, 0, len(stores))
	for _, st := range stores {
		if st.NotBuilt == "" {
			schemes = append(schemes, st.Scheme+":")
		}
	}
	return []kongplete.Option{
		kongplete.WithPredictor("mode", complete.PredictSet(modes()...)),
		kongplete.WithPredictor("state", complete.PredictSet(schemes...)),
	}
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
