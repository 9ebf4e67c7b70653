package cliflags

import (
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/alecthomas/kong"
)

// Namer names a flag the way the user set it: the spelling used on the
// command line, else the environment variable that set it, else the
// canonical --flag.
type Namer struct {
	Args     []string
	Flags    map[string]*kong.Flag
	Commands []string // the visible commands, for "unexpected argument"
	// File, with --config, names the flags of one connection: the key in
	// the connection's entry, else the flag or variable that set it, else
	// the file's top-level key.
	File *FileNames
}

// FileNames is how the --config file spells the keys of one connection.
type FileNames struct {
	Path   string          // the file, for top-level keys
	Prefix string          // "connections[1] (noc): "
	Conn   map[string]bool // keys set in the connection's entry
	Top    map[string]bool // keys set at the top level
}

// NewNamer is the Namer of k's flags and visible commands for the
// command line args.
func NewNamer(k *kong.Kong, args []string) Namer {
	n := Namer{Args: args, Flags: map[string]*kong.Flag{}}
	for _, f := range k.Model.Flags {
		n.Flags[f.Name] = f
	}
	for _, c := range k.Model.Children {
		if !c.Hidden {
			n.Commands = append(n.Commands, c.Name)
		}
	}
	return n
}

// Name is flag as the user set it: the key of the connection's entry, the
// spelling or variable that set it, the file's top-level key, else the
// connection's key or --flag.
func (n Namer) Name(flag string) string {
	if n.File != nil && n.File.Conn[flag] {
		return n.File.Prefix + flag
	}
	if s, ok := n.Given(flag); ok {
		return s
	}
	if n.File != nil {
		if n.File.Top[flag] {
			return n.File.Path + ": " + flag
		}
		return n.File.Prefix + flag
	}
	return "--" + flag
}

// Given reports whether flag was set on the command line or from the
// environment, and the spelling (or variable) that set it.
func (n Namer) Given(flag string) (string, bool) {
	f := n.Flags[flag]
	if f == nil {
		return "", false
	}
	spellings := []string{"--" + f.Name}
	for _, a := range f.Aliases {
		spellings = append(spellings, "--"+a)
	}
	if f.Short != 0 {
		spellings = append(spellings, "-"+string(f.Short))
	}
	for i := len(n.Args) - 1; i >= 0; i-- {
		a := n.Args[i]
		if a == "--" {
			continue
		}
		for _, s := range spellings {
			if a == s || strings.HasPrefix(a, s+"=") || (len(s) == 2 && strings.HasPrefix(a, s) && !strings.HasPrefix(a, "--")) {
				return s, true
			}
		}
	}
	for _, e := range f.Envs {
		if _, ok := os.LookupEnv(e); ok {
			return e, true
		}
	}
	return "", false
}

// ValueProblem rewrites kong's reason for a bad value of flag (its
// canonical --name) without the value.
func ValueProblem(flag, reason string) string {
	if i := strings.Index(reason, " (from envar "); i >= 0 { // the flag is named by its variable already
		reason = reason[:i]
	}
	reason = strings.TrimSpace(reason)
	switch {
	case strings.Contains(reason, "(<EOL>)"):
		return "needs a value"
	case strings.Contains(reason, "; perhaps try "):
		return fmt.Sprintf(`needs a value (a value that starts with "-" must be written as %s=VALUE; the argument is not shown)`, flag)
	}
	if i := strings.Index(reason, " but got "); i >= 0 {
		return reason[:i] + " (the value is not shown)"
	}
	return quoted.ReplaceAllString(reason, "(value not shown)")
}

var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// UsageError is a configuration error (a mistake in the flags, the
// environment or the --config file): exit 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }
