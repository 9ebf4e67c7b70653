package main

import (
	"fmt"
	"net/url"
	"reflect"
	"strconv"

	"github.com/edgepoll/edgepoll/internal/cliflags"
	"github.com/edgepoll/edgepoll/state/deadletter"
)

// validateSafe holds the checks of "Safe by default" (cli.md): mistakes an
// operator makes without knowing a guard flag are refused (exit 2) before
// anything is polled.
func (c *CLI) validateSafe(n flagNamer) error {
	c.IlagentDB = expandIlagentDB(c.IlagentDB)
	given := cliflags.Scan(n.Args, n.Flags)
	if err := cliflags.GivenTwice(given, n.Flags); err != nil {
		return &UsageError{Msg: err.Error()}
	}
	if err := c.otherTargetFlags(n, given); err != nil {
		return err
	}
	if err := urlPort(c.APIURL); err != nil {
		return n.errf("api-url", "%v", err)
	}
	if c.noTarget {
		return nil // the command writes no dead letter, no metrics file
	}
	if path, ok := deadletter.LocalFile(c.DeadLetter); ok {
		if err := cliflags.Writable(path); err != nil {
			return n.errf("dead-letter", "cannot be written: %v", err)
		}
	}
	if c.MetricsFile != "" {
		if err := cliflags.Writable(c.MetricsFile); err != nil {
			return n.errf("metrics-file", "cannot be written: %v", err)
		}
	}
	return nil
}

// urlPort refuses a URL whose port can never be reached (outside
// 1..65535); a URL without a port is fine.
func urlPort(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Port() == "" {
		return nil
	}
	if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("port %s is outside 1..65535", u.Port())
	}
	return nil
}

// otherTargetFlags refuses a flag that belongs to another target than
// --mode (cliflags.Namer.OtherModeFlag).
func (c *CLI) otherTargetFlags(n flagNamer, given []cliflags.Use) error {
	if c.targets[c.Mode] == nil {
		return nil // no or an unknown --mode: reported elsewhere
	}
	return n.OtherModeFlag("mode", c.Mode, targetFlagOwners(), given)
}

// targetFlagOwners maps every target's own flag (long name) to the modes
// that read it: the fields of each registration's configuration type and
// the Shared flags it Reads.
func targetFlagOwners() map[string][]string {
	owners := map[string][]string{}
	for _, r := range targets {
		for _, name := range cliflags.KongNames(reflect.TypeOf(r.New())) {
			owners[name] = append(owners[name], r.Mode)
		}
		for _, name := range r.Reads {
			owners[name] = append(owners[name], r.Mode)
		}
	}
	return owners
}
