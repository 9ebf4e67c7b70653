package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/alecthomas/kong"
	"go.yaml.in/yaml/v3"

	"github.com/edgepoll/edgepoll/internal/cliflags"
	"github.com/edgepoll/edgepoll/internal/fleetfile"
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

// fileError is a configuration error in the --config file.
func fileError(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// fileLoader reads one --config file: what its steps share.
type fileLoader struct {
	base     *CLI
	n        flagNamer
	path     string
	schema   fleetfile.Schema
	cp       *connParser
	defaults []fleetfile.Entry // top-level keys that are per-connection defaults
	topSet   map[string]bool   // the flags those set
}

// loadFleet reads and validates the --config file. base is the parsed
// command line (k its parser, n its namer). Precedence for each connection:
// its own keys, then the command line and environment, then the file's top
// level, then the built-in defaults. Process settings (--loop, --port,
// --max-parallel, logging) are read from the top level into base. Nothing
// secret is ever part of an error.
func loadFleet(k *kong.Kong, base *CLI, n flagNamer) ([]*fleetConn, error) {
	l := &fileLoader{base: base, n: n, path: base.Config, schema: fleetfile.NewSchema(k), topSet: map[string]bool{}}
	root, err := l.read()
	if err != nil {
		return nil, err
	}
	if err := l.refuseCommandLineSecrets(); err != nil {
		return nil, err
	}
	conns, err := l.topLevel(root)
	if err != nil {
		return nil, err
	}
	if l.cp, err = newConnParser(); err != nil {
		return nil, err
	}
	out := make([]*fleetConn, 0, len(conns.Content))
	seen := newUniqueness()
	for i, node := range conns.Content {
		fc, err := l.conn(i, node)
		if err == nil {
			err = seen.check(fc, out)
		}
		if err != nil {
			return nil, err
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
	if base.Connection == "" {
		return out, nil
	}
	for _, fc := range out {
		if fc.Name == base.Connection {
			return []*fleetConn{fc}, nil
		}
	}
	return nil, fileError("%s: %q is not a connection of %s", n.Name("connection"), base.Connection, l.path)
}

// read reads and parses the file: its root mapping.
func (l *fileLoader) read() (*yaml.Node, error) {
	root, err := fleetfile.Read(l.path)
	if err != nil {
		return nil, fileError("%s: %v", l.n.Name("config"), err)
	}
	return root, nil
}

// refuseCommandLineSecrets: a secret from the command line or the
// environment would go to every connection's target: with --config each
// connection names its own.
func (l *fileLoader) refuseCommandLineSecrets() error {
	if s, ok := l.n.Given("secret-from"); ok {
		return fileError("%s: with --config, give secret-from per connection in the file", s)
	}
	for name, f := range l.schema.Flags {
		if s, ok := l.n.Given(name); ok && f.Secret {
			return fileError("%s: with --config, a secret is given per connection in the file as %s%s: VARIABLE", s, name, fleetfile.EnvSuffix)
		}
	}
	return nil
}

// topLevel reads the top-level keys: process settings into base (unless
// the command line or environment gave them), the others kept as every
// connection's defaults. It returns the list of connections.
func (l *fileLoader) topLevel(root *yaml.Node) (*yaml.Node, error) {
	top, err := fleetfile.Entries(root, l.path+": ")
	if err != nil {
		return nil, &UsageError{Msg: err.Error()}
	}
	var conns *yaml.Node
	for _, e := range top {
		where := l.path + ": " + e.Key
		switch e.Key {
		case fleetfile.KeyConns:
			conns = e.Value
			continue
		case fleetfile.KeyName, fleetfile.KeyKeyEnv, fleetfile.KeyKey:
			return nil, fileError("%s: belongs to each connection, not to the top level", where)
		}
		name, viaEnv, problem := l.schema.Check(e.Key)
		if problem != "" {
			return nil, fileError("%s: %s", where, problem)
		}
		if f := l.schema.Flags[name]; f.Process {
			if _, given := l.n.Given(name); given {
				continue // the command line or environment wins
			}
			v, err := fleetfile.Scalar(e.Value)
			if err == nil {
				err = fleetfile.SetFlag(f.Flag, v)
			}
			if err != nil {
				return nil, fileError("%s: %v", where, err)
			}
			continue
		}
		if !viaEnv {
			if _, err := fleetfile.Scalar(e.Value); err != nil {
				return nil, fileError("%s: %v", where, err)
			}
		}
		l.topSet[name] = true
		l.defaults = append(l.defaults, e)
	}
	if conns == nil || conns.Kind != yaml.SequenceNode || len(conns.Content) == 0 {
		return nil, fileError("%s: %s: at least one connection is required (a list of entries with name and key-env)", l.path, fleetfile.KeyConns)
	}
	return conns, nil
}

// uniqueness refuses two connections with one name or one dead-letter file,
// and a connector key shared other than as shareKey allows.
type uniqueness struct {
	names, deadFiles map[string]int
	keys             map[string][]int // the connections of each connector key (fan-out: shareKey)
}

func newUniqueness() uniqueness {
	return uniqueness{names: map[string]int{}, keys: map[string][]int{}, deadFiles: map[string]int{}}
}

// check checks fc, the next connection after those before.
func (u uniqueness) check(fc *fleetConn, before []*fleetConn) error {
	i := len(before)
	if j, dup := u.names[fc.Name]; dup {
		return fileError("%s: %s: %q is also the name of %s", fc.Label(), fleetfile.KeyName, fc.Name, before[j].Label())
	}
	u.names[fc.Name] = i
	if err := shareKey(fc, before, u.keys); err != nil {
		return err
	}
	// A dead-letter file holds no connection: replaying a shared one
	// would send one connection's items to another's target.
	if p, ok := deadletter.LocalFile(fc.CLI.DeadLetter); ok {
		abs, _ := filepath.Abs(p)
		if j, dup := u.deadFiles[abs]; dup {
			return fileError("%s: dead-letter: %s is also the dead letter of %s: give each connection its own file (a dynamodb:TABLE may be shared)", fc.Label(), p, before[j].Label())
		}
		u.deadFiles[abs] = i
	}
	return nil
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

// conn builds and validates connection i: the command line and
// environment parsed again into fresh target configurations, then the
// file's top-level defaults and the connection's own keys on top.
func (l *fileLoader) conn(i int, node *yaml.Node) (*fleetConn, error) {
	anon := fmt.Sprintf("%s[%d]: ", fleetfile.KeyConns, i)
	entries, err := fleetfile.Entries(node, anon)
	if err != nil {
		return nil, &UsageError{Msg: err.Error()}
	}
	fc := &fleetConn{Index: i}
	if fc.Name, err = connName(entries, anon); err != nil {
		return nil, err
	}
	c := &connLoad{fileLoader: l, fc: fc, prefix: fc.Label() + ": ", set: map[string]bool{}, secretEnv: map[string]string{}}
	cli, ck := l.cp.cli, l.cp.k
	if _, err := ck.Parse(l.n.Args); err != nil {
		return nil, fmt.Errorf("internal error: %v", err)
	}
	cli.noTarget = l.base.noTarget
	if err := c.apply(entries); err != nil {
		return nil, err
	}
	if err := c.secrets(); err != nil {
		return nil, err
	}
	if err := c.key(cli); err != nil {
		return nil, err
	}
	// secret-from in the file: this connection's secrets from AWS.
	if len(cli.SecretFrom) > 0 && !cli.noTarget {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := resolveSecretFrom(ctx, ck, cli.SecretFrom)
		cancel()
		if err != nil {
			return nil, fileError("%s%v", c.prefix, strings.TrimPrefix(err.Error(), "--"))
		}
	}
	names := &cliflags.FileNames{Path: l.path, Prefix: c.prefix, Conn: c.set, Top: l.topSet}
	if err := cli.validate(flagNamer{cliflags.Namer{Args: l.n.Args, Flags: l.n.Flags, File: names}}); err != nil {
		return nil, err
	}
	cli.secrets = fleetfile.SecretValues(ck)
	fc.CLI = cli.clone()
	fc.CLI.key = fc.Key
	return fc, nil
}

// connName is the name of a connection entry, checked.
func connName(entries []fleetfile.Entry, anon string) (string, error) {
	name := ""
	for _, e := range entries {
		if e.Key == fleetfile.KeyName {
			v, err := fleetfile.Scalar(e.Value)
			if err != nil {
				return "", fileError("%s%s: %v", anon, fleetfile.KeyName, err)
			}
			name = v
		}
	}
	if name == "" {
		return "", fileError("%s%s: is required", anon, fleetfile.KeyName)
	}
	if !fleetfile.ValidName(name) {
		return "", fileError("%s%s: %q must match [a-z0-9][a-z0-9-]{0,62}", anon, fleetfile.KeyName, name)
	}
	return name, nil
}

// connLoad is one connection being read.
type connLoad struct {
	*fileLoader
	fc        *fleetConn
	prefix    string            // "connections[1] (noc): "
	set       map[string]bool   // keys set in the connection's entry
	secretEnv map[string]string // secret flag -> the variable that holds it
}

// set1 sets the flag of one entry (where names it in errors); a secret's
// -env form is noted for secrets.
func (c *connLoad) set1(e fleetfile.Entry, where string) error {
	name, viaEnv, problem := c.schema.Check(e.Key)
	if problem != "" {
		return fileError("%s%s: %s", where, e.Key, problem)
	}
	v, err := fleetfile.Scalar(e.Value)
	if err != nil {
		return fileError("%s%s: %v", where, e.Key, err)
	}
	if viaEnv {
		c.secretEnv[name] = v
		return nil
	}
	if err := fleetfile.SetFlag(c.cp.flags[name], v); err != nil {
		return fileError("%s%s: %v", where, e.Key, err)
	}
	return nil
}

// apply sets the top-level defaults the command line and environment did
// not give, then the connection's own entries.
func (c *connLoad) apply(entries []fleetfile.Entry) error {
	for _, e := range c.defaults {
		name, _, _ := c.schema.Check(e.Key)
		if _, given := c.n.Given(name); given {
			continue
		}
		if err := c.set1(e, c.path+": "); err != nil {
			return err
		}
	}
	for _, e := range entries {
		switch e.Key {
		case fleetfile.KeyName:
			continue
		case fleetfile.KeyKeyEnv:
			v, err := fleetfile.Scalar(e.Value)
			if err != nil {
				return fileError("%s%s: %v", c.prefix, e.Key, err)
			}
			c.fc.KeyEnv = v
			continue
		case fleetfile.KeyKey:
			return fileError("%s%s: a connector key is not accepted literally in the file; name the environment variable that holds it: %s: VARIABLE", c.prefix, fleetfile.KeyKey, fleetfile.KeyKeyEnv)
		case fleetfile.KeyConns:
			return fileError("%s%s: unknown key", c.prefix, e.Key)
		}
		if name, _, problem := c.schema.Check(e.Key); problem == "" && c.schema.Flags[name].Process {
			return fileError("%s%s: is a setting of the whole process: set it at the top level of the file or on the command line", c.prefix, e.Key)
		}
		if err := c.set1(e, c.prefix); err != nil {
			return err
		}
		name, _, _ := c.schema.Check(e.Key)
		c.set[name] = true
	}
	return nil
}

// secrets sets the secret flags from the variables the file names.
func (c *connLoad) secrets() error {
	envNames := make([]string, 0, len(c.secretEnv))
	for name := range c.secretEnv {
		envNames = append(envNames, name)
	}
	sort.Strings(envNames)
	for _, name := range envNames {
		where := c.prefix + name + fleetfile.EnvSuffix
		if !c.set[name] && c.topSet[name] {
			where = c.path + ": " + name + fleetfile.EnvSuffix
		}
		val, ok := os.LookupEnv(c.secretEnv[name])
		if !ok || val == "" {
			return fileError("%s: the environment variable %s is not set", where, c.secretEnv[name])
		}
		if err := fleetfile.SetFlag(c.cp.flags[name], val); err != nil {
			return fileError("%s: the value of %s is not valid", where, c.secretEnv[name])
		}
	}
	return nil
}

// key reads the connector key from key-env, unless it comes from SSM or
// Secrets Manager (connector-key-parameter/-secret).
func (c *connLoad) key(cli *CLI) error {
	fc := c.fc
	if cli.ConnectorKeyParameter != "" || cli.ConnectorKeySecret != "" {
		if fc.KeyEnv != "" {
			return fileError("%s%s: and connector-key-parameter/connector-key-secret are mutually exclusive", c.prefix, fleetfile.KeyKeyEnv)
		}
		return nil
	}
	if fc.KeyEnv == "" {
		return fileError("%s%s: is required (the environment variable that holds this connection's connector key)", c.prefix, fleetfile.KeyKeyEnv)
	}
	fc.Key = os.Getenv(fc.KeyEnv)
	if fc.Key == "" {
		return fileError("%s%s: the environment variable %s is not set", c.prefix, fleetfile.KeyKeyEnv, fc.KeyEnv)
	}
	return nil
}
