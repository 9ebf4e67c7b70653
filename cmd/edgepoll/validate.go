package main

import (
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/edgepoll/edgepoll/state/deadletter"
)

// validateSafe holds the checks of "Safe by default" (cli.md): mistakes an
// operator makes without knowing a guard flag are refused (exit 2) before
// anything is polled.
func (c *CLI) validateSafe(n flagNamer) error {
	c.IlagentDB = expandIlagentDB(c.IlagentDB)
	given := cmdlineFlags(n.args, n.flags)
	if err := givenTwice(given, n.flags); err != nil {
		return err
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
		if err := writable(path); err != nil {
			return n.errf("dead-letter", "cannot be written: %v", err)
		}
	}
	if c.MetricsFile != "" {
		if err := writable(c.MetricsFile); err != nil {
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

// flagUse is one flag set on the command line: its long name and the
// spellings it was set with, in order.
type flagUse struct {
	name      string
	spellings []string
}

// cmdlineFlags lists the flags set on the command line (up to "--") with
// the spellings used (--mode, --edge_mode, -m), in the order first seen.
// A flag's value is skipped, so a value that looks like a flag is not one.
func cmdlineFlags(args []string, flags map[string]*kong.Flag) []flagUse {
	long, short := map[string]*kong.Flag{}, map[rune]*kong.Flag{}
	for _, f := range flags {
		long[f.Name] = f
		for _, a := range f.Aliases {
			long[a] = f
		}
		if f.Short != 0 {
			short[f.Short] = f
		}
	}
	var uses []flagUse
	note := func(f *kong.Flag, spelling string) {
		for i := range uses {
			if uses[i].name == f.Name {
				uses[i].spellings = append(uses[i].spellings, spelling)
				return
			}
		}
		uses = append(uses, flagUse{name: f.Name, spellings: []string{spelling}})
	}
	takesValue := func(f *kong.Flag) bool { return !f.IsBool() && !f.IsCounter() }
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return uses
		case strings.HasPrefix(a, "--"):
			name, _, hasValue := strings.Cut(a[2:], "=")
			if f := long[name]; f != nil {
				note(f, "--"+name)
				if !hasValue && takesValue(f) {
					i++
				}
			}
		case len(a) > 1 && a[0] == '-':
			for j, r := range a[1:] {
				f := short[r]
				if f == nil {
					break
				}
				note(f, "-"+string(r))
				if takesValue(f) {
					if j+2 == len(a) { // the value is the next argument
						i++
					}
					break
				}
			}
		}
	}
	return uses
}

// givenTwice refuses a setting given under two names on the command line (a
// flag and its ilagent alias: --mode http --edge_mode stdout): which one
// wins would be an accident of order. A repeatable flag (-v, lists)
// accumulates and is not a mistake; neither is one name given twice.
func givenTwice(uses []flagUse, flags map[string]*kong.Flag) error {
	for _, u := range uses {
		if f := flags[u.name]; f != nil && (f.IsCounter() || f.IsCumulative()) {
			continue
		}
		var names []string
		for _, s := range u.spellings {
			if !slices.Contains(names, s) {
				names = append(names, s)
			}
		}
		if len(names) > 1 {
			return &UsageError{Msg: fmt.Sprintf("%s and %s: the same setting (--%s) given twice under two names; give it once",
				names[0], names[1], u.name)}
		}
	}
	return nil
}

// otherTargetFlags refuses a flag that belongs to another target than
// --mode (--mode http --kafka-brokers x): it would be ignored, and it
// usually means the --mode is the mistake. On the command line; with
// --config, in the connection's own entry (the file's top level and the
// command line are defaults for connections of every target).
func (c *CLI) otherTargetFlags(n flagNamer, given []flagUse) error {
	if c.targets[c.Mode] == nil {
		return nil // no or an unknown --mode: reported elsewhere
	}
	owners := targetFlagOwners()
	mismatch := func(flag string) bool {
		modes := owners[flag]
		return len(modes) > 0 && !slices.Contains(modes, c.Mode)
	}
	msg := func(spelled, flag string) error {
		return &UsageError{Msg: fmt.Sprintf("%s: is a setting of --mode %s, but %s is %s: remove it or fix the mode",
			spelled, strings.Join(owners[flag], "/"), n.name("mode"), c.Mode)}
	}
	if n.file != nil {
		for _, flag := range sortedKeys(n.file.conn) {
			if mismatch(flag) {
				return msg(n.file.prefix+flag, flag)
			}
		}
		return nil
	}
	for _, u := range given {
		if mismatch(u.name) {
			return msg(u.spellings[0], u.name)
		}
	}
	return nil
}

// targetFlagOwners maps every target's own flag (long name) to the modes
// that read it: the fields of each registration's configuration type and
// the Shared flags it Reads.
func targetFlagOwners() map[string][]string {
	owners := map[string][]string{}
	for _, r := range targets {
		for _, name := range kongNames(reflect.TypeOf(r.New())) {
			owners[name] = append(owners[name], r.Mode)
		}
		for _, name := range r.Reads {
			owners[name] = append(owners[name], r.Mode)
		}
	}
	return owners
}

// kongNames lists the flag names (name tags) of a kong-tagged struct type,
// embedded structs included.
func kongNames(t reflect.Type) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var names []string
	for f := range t.Fields() {
		if _, embed := f.Tag.Lookup("embed"); embed || f.Anonymous {
			names = append(names, kongNames(f.Type)...)
			continue
		}
		if name := f.Tag.Get("name"); name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
