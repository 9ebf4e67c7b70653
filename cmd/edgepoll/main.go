// Command edgepoll pulls alert events queued for an ilert edge connection and
// delivers each one, in order and at least once, to an HTTP endpoint, a
// Kafka topic, an MQTT topic, a script or stdout.
//
// One invocation runs one poll cycle; --loop runs cycles as a daemon; inside
// AWS Lambda (AWS_LAMBDA_RUNTIME_API set) it serves the Lambda runtime.
// See README.md and `edgepoll --help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/willabides/kongplete"

	"github.com/edgepoll/edgepoll/internal/awslambda"
	"github.com/edgepoll/edgepoll/internal/cliflags"
	"github.com/edgepoll/edgepoll/internal/fleetfile"
	"github.com/edgepoll/edgepoll/poll"
	scriptsink "github.com/edgepoll/edgepoll/sinks/script"
)

// Exit codes (cli.md).
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

func main() {
	scriptsink.GuardMain() // a script guard process (see sinks/script) never returns
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type kongExit struct{ code int }

// parse parses args (and the environment) into a validated CLI and the
// command to run.
func parse(args []string, stdout, stderr io.Writer) (cli *CLI, cmd command, code int, done bool) {
	cli = newCLI()
	k, err := newParser(cli, stdout, stderr)
	if err != nil {
		printError(stderr, "internal error: "+err.Error())
		return nil, nil, exitUsage, true
	}
	defer func() {
		if r := recover(); r != nil {
			ke, ok := r.(kongExit)
			if !ok {
				panic(r)
			}
			cli, cmd, code, done = nil, nil, ke.code, true
			if code != 0 {
				code = exitUsage
			}
		}
	}()
	// Shell completion: answers and exits when the shell asks (COMP_LINE);
	// its tree of commands, flags and predictors is built only then.
	if os.Getenv("COMP_LINE") != "" {
		kongplete.Complete(k, append(append(completionOptions(), cliflags.ValuePredictors(k)...), kongplete.WithExitFunc(func(c int) { panic(kongExit{c}) }))...)
	}
	namer := newFlagNamer(k, args)
	startupJSON = jsonLogsWanted(args)
	kctx, err := k.Parse(args)
	if err != nil {
		return nil, nil, usageError(stderr, namer.rewrite(err.Error())), true
	}
	cmd = &cli.Run
	if sel := kctx.Selected(); sel != nil && sel.Target.CanAddr() {
		if c, ok := sel.Target.Addr().Interface().(command); ok {
			cmd = c
		}
	}
	cli.noTarget = !cmd.needsTarget()
	if cli.Config != "" {
		if cli.fleet, err = loadFleet(k, cli, namer); err != nil {
			return nil, nil, usageError(stderr, err.Error()), true
		}
		return cli, cmd, 0, false
	}
	if len(cli.SecretFrom) > 0 && cmd.needsTarget() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := resolveSecretFrom(ctx, k, cli.SecretFrom)
		cancel()
		var ue *UsageError
		if errors.As(err, &ue) {
			return nil, nil, usageError(stderr, err.Error()), true
		}
		if err != nil {
			printError(stderr, err.Error())
			if os.Getenv("AWS_LAMBDA_RUNTIME_API") != "" {
				awslambda.PostInitError("InitError", err.Error())
			}
			return nil, nil, exitFailed, true
		}
	}
	if err := cli.validate(namer); err != nil {
		return nil, nil, usageError(stderr, err.Error()), true
	}
	cli.secrets = fleetfile.SecretValues(k)
	return cli, cmd, 0, false
}

// usageError prints a configuration error; inside AWS Lambda it is also
// reported to the Runtime API, so the invocation fails with this message.
func usageError(stderr io.Writer, msg string) int {
	printError(stderr, msg)
	if os.Getenv("AWS_LAMBDA_RUNTIME_API") != "" {
		awslambda.PostInitError("ConfigError", msg)
	}
	return exitUsage
}

// newParser is edgepoll's kong parser for cli (the command line, and each
// connection of a --config file).
func newParser(cli *CLI, stdout, stderr io.Writer) (*kong.Kong, error) {
	return kong.New(cli,
		kong.Name("edgepoll"),
		kong.Description("Pull ilert edge-connection events and deliver them in order, at least once, to a target in your network.\n\n"+
			"One invocation runs one poll cycle and exits (0 ok, 1 cycle failed, 2 usage or configuration error); --loop runs as a daemon.\n"+
			"The connector key is read from ILERT_EDGE_CONNECTOR_KEY (never a flag). Every flag can also be set as EDGEPOLL_<FLAG_NAME> unless another variable is shown."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(c int) { panic(kongExit{c}) }),
		kong.DefaultEnvars("EDGEPOLL"),
		kong.Vars{"version": "edgepoll " + poll.Version},
		registryVars(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true, FlagsLast: true, NoExpandSubcommands: true}),
		kong.ValueFormatter(helpWithAliases),
		kong.Help(helpPrinter),
		// Every duration flag takes plain seconds ("15") or a Go duration.
		cliflags.DurationMapper(),
	)
}

func run(args []string, stdout, stderr io.Writer) int {
	cli, cmd, code, done := parse(args, stdout, stderr)
	if done {
		return code
	}
	startupJSON = cli.LogFormat == "json"
	log := newLogger(cli, stderr)
	// The standard log package (used by libraries, e.g. aws-lambda-go for a
	// failed invocation) writes through the same logger.
	slog.SetDefault(log)
	if _, isRun := cmd.(*runCmd); isRun && inLambda() {
		return runLambda(cli, stderr)
	}
	ctx, stop := signalContext(log)
	defer stop()
	if cli.fleet != nil {
		switch cmd.(type) {
		case *runCmd, *stateShowCmd, *completionCmd: // they serve every connection of the file
		default:
			if len(cli.fleet) != 1 {
				return usageError(stderr, "--connection: this command works on one connection of the --config file: name it with --connection NAME")
			}
			cli = cli.fleet[0].CLI
		}
	}
	return cmd.run(&cmdEnv{ctx: ctx, cli: cli, log: log, stdout: stdout, stderr: stderr})
}

// helpPrinter is kong's, with a usage line that says a command is optional
// (without one, edgepoll runs a cycle); a command's --help shows its own
// flags only (commandHelp).
func helpPrinter(o kong.HelpOptions, ctx *kong.Context) error {
	sel := ctx.Selected()
	if sel != nil && sel.Name != "run" {
		return cliflags.CommandHelp(o, ctx, sel)
	}
	if sel == nil || sel.Name == "run" {
		fmt.Fprintln(ctx.Stdout, "Usage: edgepoll [flags]            run one poll cycle (--loop: as a daemon)")
		fmt.Fprintln(ctx.Stdout, "       edgepoll <command> [flags]")
		o.NoAppSummary = true
	}
	return kong.DefaultHelpPrinter(o, ctx)
}

// helpWithAliases is kong's help text plus the reference agent's (ilagent)
// spellings of the flag, which edgepoll accepts too.
func helpWithAliases(v *kong.Value) string {
	help := kong.DefaultHelpValueFormatter(v)
	if v.Flag == nil || len(v.Flag.Aliases) == 0 {
		return help
	}
	names := make([]string, 0, len(v.Flag.Aliases)+1)
	if v.Flag.Short != 0 {
		names = append(names, "-"+string(v.Flag.Short))
	}
	for _, a := range v.Flag.Aliases {
		names = append(names, "--"+a)
	}
	return help + " [ilagent: " + strings.Join(names, ", ") + "]"
}

// startupJSON: start-up errors are printed as JSON log lines (--log-format
// json), else as "edgepoll: error: ...".
var startupJSON bool

// jsonLogsWanted tells, before the command line is parsed (its errors
// are start-up errors too), whether JSON logs were asked for: the last
// --log-format on the command line, else EDGEPOLL_LOG_FORMAT, else inside
// Lambda its log format (JSON unless Text).
func jsonLogsWanted(args []string) bool {
	format := ""
	for i, a := range args {
		if a == "--" {
			break
		}
		if v, ok := strings.CutPrefix(a, "--log-format="); ok {
			format = v
		} else if a == "--log-format" && i+1 < len(args) {
			format = args[i+1]
		}
	}
	if format == "" {
		format = os.Getenv("EDGEPOLL_LOG_FORMAT")
	}
	if format == "" && os.Getenv("AWS_LAMBDA_RUNTIME_API") != "" {
		return !strings.EqualFold(os.Getenv("AWS_LAMBDA_LOG_FORMAT"), "text")
	}
	return format == "json"
}

// printError prints a start-up error: one line, plain or JSON.
func printError(stderr io.Writer, msg string) {
	if startupJSON {
		slog.New(slog.NewJSONHandler(stderr, nil)).Error("edgepoll: error", "err", msg)
		return
	}
	fmt.Fprintf(stderr, "edgepoll: error: %s\n", msg)
}

// fail prints a start-up error; a UsageError is exit 2, anything else 1.
func fail(stderr io.Writer, err error) int {
	printError(stderr, err.Error())
	var ue *UsageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitFailed
}

// signalContext is cancelled by the first SIGTERM/SIGINT (graceful stop:
// finish the item in flight, persist, exit); a second signal exits at once.
func signalContext(log *slog.Logger) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		sig, ok := <-ch
		if !ok {
			return
		}
		log.Info("stopping: finishing the item in flight and persisting the cursor (signal again to exit at once)", "signal", sig.String())
		cancel()
		if sig, ok = <-ch; ok {
			log.Warn("second signal: exiting at once", "signal", sig.String())
			os.Exit(exitFailed)
		}
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}

// keyFetchTimeout bounds reading the key from SSM or Secrets Manager.
const keyFetchTimeout = 20 * time.Second

// connectorKey reads the connector key: from ILERT_EDGE_CONNECTOR_KEY, or from
// SSM / Secrets Manager when configured. Surrounding white space (a trailing
// newline of a secret file) is not part of the key.
func connectorKey(ctx context.Context, cli *CLI) (string, error) {
	if cli.key != "" { // a --config connection's, from its key-env
		return cli.key, nil
	}
	source := "ILERT_EDGE_CONNECTOR_KEY"
	var key string
	switch {
	case cli.ConnectorKeyParameter != "" || cli.ConnectorKeySecret != "":
		source = "--connector-key-parameter"
		if cli.ConnectorKeySecret != "" {
			source = "--connector-key-secret"
		}
		fctx, cancel := context.WithTimeout(ctx, keyFetchTimeout)
		k, err := fetchConnectorKey(fctx, cli)
		cancel()
		if err != nil {
			return "", err
		}
		key = k
	default:
		key = strings.TrimSpace(os.Getenv("ILERT_EDGE_CONNECTOR_KEY"))
		if key == "" {
			return "", &UsageError{Msg: "ILERT_EDGE_CONNECTOR_KEY: is required (the edge connection's key; or set --connector-key-parameter / --connector-key-secret)"}
		}
	}
	if poll.ContainsControl(key) {
		return "", &UsageError{Msg: source + ": the connector key contains control characters"}
	}
	return key, nil
}

func newLogger(cli *CLI, w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if cli.Verbose >= 1 {
		level = slog.LevelDebug
	}
	if cli.Verbose >= 2 {
		level = slog.LevelDebug - 4
	}
	opts := &slog.HandlerOptions{Level: level}
	if cli.LogFormat == "json" {
		opts.ReplaceAttr = durationSeconds
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// durationSeconds is the JSON logs' ReplaceAttr: a time.Duration is written
// as float seconds (slog's JSON handler writes nanoseconds).
func durationSeconds(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.Float64(a.Key, a.Value.Duration().Seconds())
	}
	return a
}
