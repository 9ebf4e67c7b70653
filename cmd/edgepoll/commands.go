package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
)

// Commands are edgepoll's subcommands. With none given, edgepoll runs one
// poll cycle (the hidden default command "run"), exactly as the plain
// `edgepoll [flags]` contract says; the root flags apply to every command
// and may stand before or after it.
type Commands struct {
	Run         runCmd        `cmd:"" default:"withargs" hidden:"" help:"Run one poll cycle (the default when no command is given)."`
	State       stateCmd      `cmd:"" help:"Inspect and repair the connection's cursor and lease (the same --state and connector key as a run)."`
	Check       checkCmd      `cmd:"" help:"Check the configuration, the ilert key, the target and the state store, one line each, without delivering anything or moving the cursor."`
	DeadLetters deadLetterCmd `cmd:"" name:"dead-letter" help:"List or replay the items skipped as non-retryable (--dead-letter)."`
	Completion  completionCmd `cmd:"" help:"Print a shell completion script: bash, zsh or fish."`
}

// cmdEnv is what a command runs with.
type cmdEnv struct {
	ctx            context.Context
	cli            *CLI
	log            *slog.Logger
	stdout, stderr io.Writer
}

// command is implemented by every subcommand.
type command interface {
	// needsTarget reports whether the command delivers or checks delivery
	// (--mode and its flags are then required and validated).
	needsTarget() bool
	run(e *cmdEnv) int
}

type runCmd struct{}

func (*runCmd) needsTarget() bool { return true }

// run runs the connections (one given by flags, or those of --config):
// one cycle each, or with --loop as a daemon.
func (*runCmd) run(e *cmdEnv) int {
	r := newRunner(e.cli, runID(), e.log, e.stdout, false)
	defer r.Close()
	code, err := r.Run(e.ctx)
	if err != nil {
		return fail(e.stderr, err)
	}
	return code
}

type completionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"bash, zsh or fish."`
}

func (*completionCmd) needsTarget() bool { return false }

// Completion scripts: the shell asks the binary itself (posener/complete's
// COMP_LINE protocol, answered by kongplete in main before parsing).
var completionScripts = map[string]string{
	"bash": "complete -C %[1]q %[2]s\n",
	"zsh":  "autoload -U +X bashcompinit && bashcompinit\ncomplete -C %[1]q %[2]s\n",
	"fish": `function __complete_%[2]s
    set -lx COMP_LINE (commandline -cp)
    test -z (commandline -ct)
    and set COMP_LINE "$COMP_LINE "
    %[1]q
end
complete -f -c %[2]s -a "(__complete_%[2]s)"
`,
}

func (c *completionCmd) run(e *cmdEnv) int {
	bin, err := os.Executable()
	if err == nil {
		bin, err = filepath.Abs(bin)
	}
	if err != nil {
		return fail(e.stderr, fmt.Errorf("completion: finding this binary: %v", err))
	}
	fmt.Fprintf(e.stdout, completionScripts[c.Shell], bin, "edgepoll")
	return exitOK
}
