package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/alecthomas/kong"
	"go.yaml.in/yaml/v3"

	"github.com/edgepoll/edgepoll/sinks"
	"github.com/edgepoll/edgepoll/state/deadletter"
)

// fleetConn is one connection of a --config file: its name, its whole
// configuration (validated) and its connector key.
type fleetConn struct {
	Index int
	Name  string
	CLI   *CLI
	// Key is the connector key read from KeyEnv; empty when the key comes
	// from SSM or Secrets Manager (connector-key-parameter/-secret).
	Key    string
	KeyEnv string
}

// Label names the connection in errors and logs: "connections[1] (noc)".
func (c *fleetConn) Label() string { return fmt.Sprintf("connections[%d] (%s)", c.Index, c.Name) }

// connNamePattern is what a connection's name must look like: it appears in
// logs, metric labels and Kubernetes-style names. Compiled on first use: the
// bounded repetition makes a large program (0.2 ms, 50 KB), too much for
// every start's package init when only --config runs need it.
var connNamePattern = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
})

// Keys of a connection entry that are not flags.
const (
	keyName   = "name"
	keyKeyEnv = "key-env"
	keyKey    = "key"
	envSuffix = "-env"
	keyConns  = "connections"
)

// fileFlag is a flag the file may set.
type fileFlag struct {
	flag    *kong.Flag
	secret  bool // given only as <name>-env
	process bool // one value for the process: top level only
}

// fleetSchema knows which keys a file may use, from the CLI's flags: every
// flag's long name; a secret flag only as <name>-env.
type fleetSchema struct {
	flags   map[string]fileFlag
	aliases map[string]string // ilagent spelling -> long name
}

func newFleetSchema(k *kong.Kong) fleetSchema {
	s := fleetSchema{flags: map[string]fileFlag{}, aliases: map[string]string{}}
	for _, f := range k.Model.Flags {
		if f.Name == "help" || f.Name == "version" || f.Name == "config" {
			continue
		}
		s.flags[f.Name] = fileFlag{flag: f, secret: f.Tag.Has("secret"), process: f.Tag.Has("process")}
		for _, a := range f.Aliases {
			s.aliases[a] = f.Name
		}
	}
	return s
}

// check says what is wrong with key in a file, or "" if it is a known key.
// It returns the flag the key sets and whether it is a secret's -env form.
func (s fleetSchema) check(key string) (name string, viaEnv bool, problem string) {
	if f, ok := s.flags[key]; ok {
		if f.secret {
			return key, false, "a secret is not accepted literally in the file; name the environment variable that holds it: " + key + envSuffix + ": VARIABLE"
		}
		return key, false, ""
	}
	if base, ok := strings.CutSuffix(key, envSuffix); ok {
		if f, ok := s.flags[base]; ok && f.secret {
			return base, true, ""
		}
	}
	if long, ok := s.aliases[key]; ok {
		return "", false, fmt.Sprintf("unknown key (the file uses long flag names: %s)", long)
	}
	return "", false, "unknown key"
}

// yamlEntry is one key: value of a mapping.
type yamlEntry struct {
	key   string
	value *yaml.Node
}

// mappingEntries returns the entries of a mapping node in file order,
// refusing a key given twice.
func mappingEntries(n *yaml.Node, where string) ([]yamlEntry, error) {
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: must be a mapping of key: value (line %d)", strings.TrimSuffix(where, ": "), n.Line)
	}
	seen := map[string]bool{}
	out := make([]yamlEntry, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("%skeys must be plain names (line %d)", where, k.Line)
		}
		if seen[k.Value] {
			return nil, fmt.Errorf("%s%s: given twice (line %d)", where, k.Value, k.Line)
		}
		seen[k.Value] = true
		out = append(out, yamlEntry{key: k.Value, value: n.Content[i+1]})
	}
	return out, nil
}

// scalar returns the text of a value; a list (kafka-brokers) is joined with
// commas.
func scalar(n *yaml.Node) (string, error) {
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

// setFlag parses v into the flag's field, as kong does for a command-line
// value; the error names no flag (the caller does).
func setFlag(f *kong.Flag, v string) error {
	err := f.Value.Parse(kong.ScanFromTokens(kong.Token{Type: kong.FlagValueToken, Value: v}), f.Value.Target)
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}

// fileError is a configuration error in the --config file.
func fileError(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// loadFleet reads and validates the --config file. base is the parsed
// command line (k its parser, n its namer). Precedence for each connection:
// its own keys, then the command line and environment, then the file's top
// level, then the built-in defaults. Process settings (--loop, --port,
// --max-parallel, logging) are read from the top level into base. Nothing
// secret is ever part of an error.
func loadFleet(k *kong.Kong, base *CLI, n flagNamer) ([]*fleetConn, error) {
	path := base.Config
	cfgFlag := n.name("config")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fileError("%s: %v", cfgFlag, sinks.ShortPathErr(err))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fileError("%s: %s: %v", cfgFlag, path, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, fileError("%s: %s: empty file (want a mapping with connections:)", cfgFlag, path)
	}
	schema := newFleetSchema(k)

	if s, ok := n.given("secret-from"); ok {
		return nil, fileError("%s: with --config, give secret-from per connection in the file", s)
	}
	// A secret from the command line or the environment would go to every
	// connection's target: with --config each connection names its own.
	for name, f := range schema.flags {
		if s, ok := n.given(name); ok && f.secret {
			return nil, fileError("%s: with --config, a secret is given per connection in the file as %s%s: VARIABLE", s, name, envSuffix)
		}
	}

	top, err := mappingEntries(doc.Content[0], path+": ")
	if err != nil {
		return nil, &UsageError{Msg: err.Error()}
	}
	var (
		conns    *yaml.Node
		defaults []yamlEntry // top-level keys that are per-connection defaults
		topSet   = map[string]bool{}
	)
	for _, e := range top {
		where := path + ": " + e.key
		switch e.key {
		case keyConns:
			conns = e.value
			continue
		case keyName, keyKeyEnv, keyKey:
			return nil, fileError("%s: belongs to each connection, not to the top level", where)
		}
		name, viaEnv, problem := schema.check(e.key)
		if problem != "" {
			return nil, fileError("%s: %s", where, problem)
		}
		if f := schema.flags[name]; f.process {
			if _, given := n.given(name); given {
				continue // the command line or environment wins
			}
			v, err := scalar(e.value)
			if err == nil {
				err = setFlag(f.flag, v)
			}
			if err != nil {
				return nil, fileError("%s: %v", where, err)
			}
			continue
		}
		if !viaEnv {
			if _, err := scalar(e.value); err != nil {
				return nil, fileError("%s: %v", where, err)
			}
		}
		topSet[name] = true
		defaults = append(defaults, e)
	}
	if conns == nil || conns.Kind != yaml.SequenceNode || len(conns.Content) == 0 {
		return nil, fileError("%s: %s: at least one connection is required (a list of entries with name and key-env)", path, keyConns)
	}

	cp, err := newConnParser()
	if err != nil {
		return nil, err
	}
	out := make([]*fleetConn, 0, len(conns.Content))
	names := map[string]int{}
	keys := map[string][]int{}
	deadFiles := map[string]int{}
	for i, node := range conns.Content {
		fc, err := loadConn(i, node, base, n, cp, schema, defaults, path, topSet)
		if err != nil {
			return nil, err
		}
		if j, dup := names[fc.Name]; dup {
			return nil, fileError("%s: %s: %q is also the name of %s", fc.Label(), keyName, fc.Name, out[j].Label())
		}
		names[fc.Name] = i
		if err := shareKey(fc, out, keys); err != nil {
			return nil, err
		}
		// A dead-letter file holds no connection: replaying a shared one
		// would send one connection's items to another's target.
		if p, ok := deadletter.LocalFile(fc.CLI.DeadLetter); ok {
			abs, _ := filepath.Abs(p)
			if j, dup := deadFiles[abs]; dup {
				return nil, fileError("%s: dead-letter: %s is also the dead letter of %s: give each connection its own file (a dynamodb:TABLE may be shared)", fc.Label(), p, out[j].Label())
			}
			deadFiles[abs] = i
		}
		out = append(out, fc)
	}
	// Every script target withholds every secret of every connection.
	var all []string
	for _, fc := range out {
		all = append(all, fc.CLI.secrets...)
		all = append(all, fc.Key)
	}
	for _, fc := range out {
		fc.CLI.secrets = all
	}
	base.secrets = all
	if base.Connection != "" {
		for _, fc := range out {
			if fc.Name == base.Connection {
				return []*fleetConn{fc}, nil
			}
		}
		return nil, fileError("%s: %q is not a connection of %s", n.name("connection"), base.Connection, path)
	}
	return out, nil
}

// connParser parses the command line again for each connection of the
// file, into one scratch CLI that each connection's configuration is then
// cloned from (a kong parser costs more to build than to run).
type connParser struct {
	cli   *CLI
	k     *kong.Kong
	flags map[string]*kong.Flag
}

func newConnParser() (*connParser, error) {
	cp := &connParser{cli: newCLI(), flags: map[string]*kong.Flag{}}
	k, err := newParser(cp.cli, io.Discard, io.Discard)
	if err != nil {
		return nil, fmt.Errorf("internal error: %v", err)
	}
	cp.k = k
	for _, f := range k.Model.Flags {
		cp.flags[f.Name] = f
	}
	return cp, nil
}

// clone copies c with copies of its target configurations.
func (c *CLI) clone() *CLI {
	out := *c
	out.fleet, out.secrets, out.key = nil, append([]string(nil), c.secrets...), ""
	out.targets = map[string]sinks.Target{}
	out.Plugins = nil
	for _, r := range targets {
		v := reflect.New(reflect.TypeOf(c.targets[r.Mode]).Elem())
		v.Elem().Set(reflect.ValueOf(c.targets[r.Mode]).Elem())
		t := v.Interface().(sinks.Target)
		out.targets[r.Mode] = t
		out.Plugins = append(out.Plugins, t)
	}
	return &out
}

// secretValues are the values of the secret flags (tagged secret:"") that k
// parsed.
func secretValues(k *kong.Kong) []string {
	var out []string
	for _, f := range k.Model.Flags {
		if f.Tag.Has("secret") {
			if v := f.Value.Target.String(); v != "" {
				out = append(out, v)
			}
		}
	}
	return out
}

// loadConn builds and validates connection i.
func loadConn(i int, node *yaml.Node, base *CLI, n flagNamer, cp *connParser, schema fleetSchema, defaults []yamlEntry, path string, topSet map[string]bool) (*fleetConn, error) {
	anon := fmt.Sprintf("%s[%d]: ", keyConns, i)
	entries, err := mappingEntries(node, anon)
	if err != nil {
		return nil, &UsageError{Msg: err.Error()}
	}
	fc := &fleetConn{Index: i}
	for _, e := range entries {
		if e.key == keyName {
			v, err := scalar(e.value)
			if err != nil {
				return nil, fileError("%s%s: %v", anon, keyName, err)
			}
			fc.Name = v
		}
	}
	if fc.Name == "" {
		return nil, fileError("%s%s: is required", anon, keyName)
	}
	if !connNamePattern().MatchString(fc.Name) {
		return nil, fileError("%s%s: %q must match [a-z0-9][a-z0-9-]{0,62}", anon, keyName, fc.Name)
	}
	prefix := fc.Label() + ": "

	// The connection's configuration: the command line and environment
	// parsed again into fresh target configurations, then the file on top.
	cli, ck, flags := cp.cli, cp.k, cp.flags
	if _, err := ck.Parse(n.args); err != nil {
		return nil, fmt.Errorf("internal error: %v", err)
	}
	cli.noTarget = base.noTarget
	connSet := map[string]bool{}
	secretEnv := map[string]string{} // flag -> variable
	apply := func(e yamlEntry, where string) error {
		name, viaEnv, problem := schema.check(e.key)
		if problem != "" {
			return fileError("%s%s: %s", where, e.key, problem)
		}
		v, err := scalar(e.value)
		if err != nil {
			return fileError("%s%s: %v", where, e.key, err)
		}
		if viaEnv {
			secretEnv[name] = v
			return nil
		}
		if err := setFlag(flags[name], v); err != nil {
			return fileError("%s%s: %v", where, e.key, err)
		}
		return nil
	}
	for _, e := range defaults {
		name, _, _ := schema.check(e.key)
		if _, given := n.given(name); given {
			continue
		}
		if err := apply(e, path+": "); err != nil {
			return nil, err
		}
	}
	for _, e := range entries {
		switch e.key {
		case keyName:
			continue
		case keyKeyEnv:
			v, err := scalar(e.value)
			if err != nil {
				return nil, fileError("%s%s: %v", prefix, e.key, err)
			}
			fc.KeyEnv = v
			continue
		case keyKey:
			return nil, fileError("%s%s: a connector key is not accepted literally in the file; name the environment variable that holds it: %s: VARIABLE", prefix, keyKey, keyKeyEnv)
		case keyConns:
			return nil, fileError("%s%s: unknown key", prefix, e.key)
		}
		if name, _, problem := schema.check(e.key); problem == "" && schema.flags[name].process {
			return nil, fileError("%s%s: is a setting of the whole process: set it at the top level of the file or on the command line", prefix, e.key)
		}
		if err := apply(e, prefix); err != nil {
			return nil, err
		}
		name, _, _ := schema.check(e.key)
		connSet[name] = true
	}

	// Secrets from the variables the file names.
	envNames := make([]string, 0, len(secretEnv))
	for name := range secretEnv {
		envNames = append(envNames, name)
	}
	sort.Strings(envNames)
	for _, name := range envNames {
		where := prefix + name + envSuffix
		if !connSet[name] && topSet[name] {
			where = path + ": " + name + envSuffix
		}
		val, ok := os.LookupEnv(secretEnv[name])
		if !ok || val == "" {
			return nil, fileError("%s: the environment variable %s is not set", where, secretEnv[name])
		}
		if err := setFlag(flags[name], val); err != nil {
			return nil, fileError("%s: the value of %s is not valid", where, secretEnv[name])
		}
	}

	if cli.ConnectorKeyParameter == "" && cli.ConnectorKeySecret == "" {
		if fc.KeyEnv == "" {
			return nil, fileError("%s%s: is required (the environment variable that holds this connection's connector key)", prefix, keyKeyEnv)
		}
		fc.Key = os.Getenv(fc.KeyEnv)
		if fc.Key == "" {
			return nil, fileError("%s%s: the environment variable %s is not set", prefix, keyKeyEnv, fc.KeyEnv)
		}
	} else if fc.KeyEnv != "" {
		return nil, fileError("%s%s: and connector-key-parameter/connector-key-secret are mutually exclusive", prefix, keyKeyEnv)
	}

	// secret-from in the file: this connection's secrets from AWS.
	if len(cli.SecretFrom) > 0 && !cli.noTarget {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := resolveSecretFrom(ctx, ck, cli.SecretFrom)
		cancel()
		if err != nil {
			return nil, fileError("%s%v", prefix, strings.TrimPrefix(err.Error(), "--"))
		}
	}
	names := &fileNames{path: path, prefix: prefix, conn: connSet, top: topSet}
	if err := cli.validate(flagNamer{args: n.args, flags: n.flags, file: names}); err != nil {
		return nil, err
	}
	cli.secrets = secretValues(ck)
	fc.CLI = cli.clone()
	fc.CLI.key = fc.Key
	return fc, nil
}
