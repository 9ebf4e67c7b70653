package main

import "github.com/edgepoll/edgepoll/internal/cliflags"

// checkCmd: `edgepoll check` validates the configuration, then checks the
// key, the target and the state store without delivering anything or moving
// the cursor. One line per check on stdout: "<what>: ok" or
// "<what>: FAIL: <reason>"; exit 0 if all pass, 1 otherwise, 2 for a bad
// configuration.
type checkCmd struct {
	Timeout Seconds `name:"check-timeout" default:"20s" env:"-" help:"Bound on each check."`
}

func (*checkCmd) needsTarget() bool { return true }

func (cmd *checkCmd) run(e *cmdEnv) int {
	return opsExit(e, opsConn(e.cli, e.log).Check(e.ctx, e.stdout, cmd.Timeout.D(), cliflags.Writable))
}
