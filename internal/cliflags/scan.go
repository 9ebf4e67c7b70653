package cliflags

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/alecthomas/kong"
)

// Use is one flag set on the command line: its long name and the
// spellings it was set with, in order.
type Use struct {
	Name      string
	Spellings []string
}

// Scan lists the flags set on the command line (up to "--") with
// the spellings used (--mode, --edge_mode, -m), in the order first seen.
// A flag's value is skipped, so a value that looks like a flag is not one.
func Scan(args []string, flags map[string]*kong.Flag) []Use {
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
	var uses []Use
	note := func(f *kong.Flag, spelling string) {
		for i := range uses {
			if uses[i].Name == f.Name {
				uses[i].Spellings = append(uses[i].Spellings, spelling)
				return
			}
		}
		uses = append(uses, Use{Name: f.Name, Spellings: []string{spelling}})
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

// GivenTwice refuses a setting given under two names on the command line (a
// flag and its ilagent alias: --mode http --edge_mode stdout): which one
// wins would be an accident of order. A repeatable flag (-v, lists)
// accumulates and is not a mistake; neither is one name given twice.
func GivenTwice(uses []Use, flags map[string]*kong.Flag) error {
	for _, u := range uses {
		if f := flags[u.Name]; f != nil && (f.IsCounter() || f.IsCumulative()) {
			continue
		}
		var names []string
		for _, s := range u.Spellings {
			if !slices.Contains(names, s) {
				names = append(names, s)
			}
		}
		if len(names) > 1 {
			return fmt.Errorf("%s and %s: the same setting (--%s) given twice under two names; give it once",
				names[0], names[1], u.Name)
		}
	}
	return nil
}

// KongNames lists the flag names (name tags) of a kong-tagged struct type,
// embedded structs included.
func KongNames(t reflect.Type) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var names []string
	for f := range t.Fields() {
		if _, embed := f.Tag.Lookup("embed"); embed || f.Anonymous {
			names = append(names, KongNames(f.Type)...)
			continue
		}
		if name := f.Tag.Get("name"); name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}
