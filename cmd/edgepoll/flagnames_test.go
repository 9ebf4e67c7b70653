package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// registeredFlags returns, per registration, the flags kong builds from it:
// "edgepoll" (the CLI's own flags, sinks.Shared and the route flags, with
// the targets left out) and "target <mode>" for each target's
// configuration type on its own.
func registeredFlags(t *testing.T) map[string][]*kong.Flag {
	t.Helper()
	out := map[string][]*kong.Flag{}
	k, err := newParser(&CLI{}, io.Discard, io.Discard)
	if err != nil {
		t.Fatalf("the CLI without targets: %v", err)
	}
	out["edgepoll"] = k.Model.Flags
	for _, r := range targets {
		root := &struct{ kong.Plugins }{kong.Plugins{r.New()}}
		k, err := kong.New(root, kong.Name("edgepoll"), kong.DefaultEnvars("EDGEPOLL"), registryVars())
		if err != nil {
			t.Fatalf("target %s: %v", r.Mode, err)
		}
		var fs []*kong.Flag
		for _, f := range k.Model.Flags {
			if f.Name != "help" { // kong's own, added to every parser
				fs = append(fs, f)
			}
		}
		out["target "+r.Mode] = fs
	}
	return out
}

// flagNameClashes lists every name used twice across registrations (or
// twice within one): long names and aliases share one namespace (--NAME,
// and a --config key), short flags (-x) and environment variables have
// their own. A clash breaks every invocation, while each target's own
// tests pass.
func flagNameClashes(regs map[string][]*kong.Flag) []string {
	type use struct{ reg, flag, as string }
	seen := map[string]use{}
	var clashes []string
	claim := func(key string, u use) {
		if prev, dup := seen[key]; dup {
			clashes = append(clashes, fmt.Sprintf("%s: %s (--%s, %s) and %s (--%s, %s)",
				key, prev.reg, prev.flag, prev.as, u.reg, u.flag, u.as))
			return
		}
		seen[key] = u
	}
	names := make([]string, 0, len(regs))
	for n := range regs {
		names = append(names, n)
	}
	sort.Strings(names) // a stable message
	for _, reg := range names {
		for _, f := range regs[reg] {
			claim("--"+f.Name, use{reg, f.Name, "its name"})
			for _, a := range f.Aliases {
				claim("--"+a, use{reg, f.Name, "alias --" + a})
			}
			if f.Short != 0 {
				claim("-"+string(f.Short), use{reg, f.Name, "short -" + string(f.Short)})
			}
			for _, e := range f.Envs {
				claim("$"+e, use{reg, f.Name, "variable " + e})
			}
		}
	}
	return clashes
}

func TestFlagNamesUniqueAcrossRegistrations(t *testing.T) {
	regs := registeredFlags(t)
	n := 0
	for _, fs := range regs {
		n += len(fs)
	}
	if clashes := flagNameClashes(regs); len(clashes) > 0 {
		t.Fatalf("flag names registered twice (each breaks every invocation):\n  %s", strings.Join(clashes, "\n  "))
	}
	k, err := newParser(newCLI(), io.Discard, io.Discard)
	if err != nil {
		t.Fatalf("the whole CLI: %v", err)
	}
	if len(regs) != len(targets)+1 || n != len(k.Model.Flags) {
		t.Fatalf("%d flags in %d registrations, the CLI has %d: the walk missed some", n, len(regs), len(k.Model.Flags))
	}
	t.Logf("%d flags in %d registrations, every name, alias, short flag and variable unique", n, len(regs))
}

// The check itself: a target that registers the CLI's --file (the alias
// of --ilagent-db) is named, with both registrations.
func TestFlagNameClashIsNamed(t *testing.T) {
	regs := registeredFlags(t)
	regs["target clash"] = []*kong.Flag{{Value: &kong.Value{Name: "clash-file"}, Aliases: []string{"file"}}}
	clashes := flagNameClashes(regs)
	want := "--file: edgepoll (--ilagent-db, alias --file) and target clash (--clash-file, alias --file)"
	if len(clashes) != 1 || clashes[0] != want {
		t.Fatalf("clashes %q, want [%q]", clashes, want)
	}
}
