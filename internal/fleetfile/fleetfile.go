// Package fleetfile reads the YAML of a --config file into what the
// command line would have given: which keys a file may use (derived from
// the parser's flags), the entries of a mapping in file order, a value's
// text and its parsing into a flag; the top level (process settings, every
// connection's defaults) and each connection's entry over it (its name,
// secrets from the variables it names, connector key from key-env); the
// names and dead-letter files no two connections may share. It knows no
// other flag of edgepoll's own: cmd/edgepoll parses the command line again
// for each connection (Loader.Parse) and validates it.
package fleetfile

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"

	"github.com/alecthomas/kong"
	"go.yaml.in/yaml/v3"

	"github.com/edgepoll/edgepoll/sinks"
)

// Keys of a connection entry that are not flags.
const (
	KeyName   = "name"
	KeyKeyEnv = "key-env"
	KeyKey    = "key"
	EnvSuffix = "-env"
	KeyConns  = "connections"
)

// namePattern is what a connection's name must look like: it appears in
// logs, metric labels and Kubernetes-style names. Compiled on first use: the
// bounded repetition makes a large program (0.2 ms, 50 KB), too much for
// every start's package init when only --config runs need it.
var namePattern = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
})

// ValidName reports whether name may name a connection:
// [a-z0-9][a-z0-9-]{0,62}.
func ValidName(name string) bool { return namePattern().MatchString(name) }

// Flag is a flag the file may set.
type Flag struct {
	Flag    *kong.Flag
	Secret  bool // given only as <name>-env
	Process bool // one value for the process: top level only
}

// Schema knows which keys a file may use, from the CLI's flags: every
// flag's long name; a secret flag only as <name>-env.
type Schema struct {
	Flags   map[string]Flag
	aliases map[string]string // ilagent spelling -> long name
}

// NewSchema derives the schema from k's flags (--help, --version and
// --config aside).
func NewSchema(k *kong.Kong) Schema {
	s := Schema{Flags: map[string]Flag{}, aliases: map[string]string{}}
	for _, f := range k.Model.Flags {
		if f.Name == "help" || f.Name == "version" || f.Name == "config" {
			continue
		}
		s.Flags[f.Name] = Flag{Flag: f, Secret: f.Tag.Has("secret"), Process: f.Tag.Has("process")}
		for _, a := range f.Aliases {
			s.aliases[a] = f.Name
		}
	}
	return s
}

// Check says what is wrong with key in a file, or "" if it is a known key.
// It returns the flag the key sets and whether it is a secret's -env form.
func (s Schema) Check(key string) (name string, viaEnv bool, problem string) {
	if f, ok := s.Flags[key]; ok {
		if f.Secret {
			return key, false, "a secret is not accepted literally in the file; name the environment variable that holds it: " + key + EnvSuffix + ": VARIABLE"
		}
		return key, false, ""
	}
	if base, ok := strings.CutSuffix(key, EnvSuffix); ok {
		if f, ok := s.Flags[base]; ok && f.Secret {
			return base, true, ""
		}
	}
	if long, ok := s.aliases[key]; ok {
		return "", false, fmt.Sprintf("unknown key (the file uses long flag names: %s)", long)
	}
	return "", false, "unknown key"
}

// Read reads and parses the file at path: its root mapping. Its errors
// name the path, not the flag.
func Read(path string) (*yaml.Node, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, sinks.ShortPathErr(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, fmt.Errorf("%s: empty file (want a mapping with connections:)", path)
	}
	return doc.Content[0], nil
}

// Entry is one key: value of a mapping.
type Entry struct {
	Key   string
	Value *yaml.Node
}

// Entries returns the entries of a mapping node in file order, refusing a
// key given twice. where prefixes the errors ("connections[1]: ").
func Entries(n *yaml.Node, where string) ([]Entry, error) {
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: must be a mapping of key: value (line %d)", strings.TrimSuffix(where, ": "), n.Line)
	}
	seen := map[string]bool{}
	out := make([]Entry, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("%skeys must be plain names (line %d)", where, k.Line)
		}
		if seen[k.Value] {
			return nil, fmt.Errorf("%s%s: given twice (line %d)", where, k.Value, k.Line)
		}
		seen[k.Value] = true
		out = append(out, Entry{Key: k.Value, Value: n.Content[i+1]})
	}
	return out, nil
}

// Scalar returns the text of a value; a list (kafka-brokers) is joined with
// commas.
func Scalar(n *yaml.Node) (string, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "", errors.New("has no value")
		}
		return n.Value, nil
	case yaml.SequenceNode:
		parts := make([]string, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return "", errors.New("must be a value or a list of values")
			}
			parts = append(parts, c.Value)
		}
		return strings.Join(parts, ","), nil
	}
	return "", errors.New("must be a value or a list of values")
}

// SetFlag parses v into the flag's field, as kong does for a command-line
// value; the error names no flag (the caller does).
func SetFlag(f *kong.Flag, v string) error {
	err := f.Parse(kong.ScanFromTokens(kong.Token{Type: kong.FlagValueToken, Value: v}), f.Target)
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}

// SecretValues are the values of the secret flags (tagged secret:"") that
// k parsed.
func SecretValues(k *kong.Kong) []string {
	var out []string
	for _, f := range k.Model.Flags {
		if f.Tag.Has("secret") {
			if v := f.Target.String(); v != "" {
				out = append(out, v)
			}
		}
	}
	return out
}
