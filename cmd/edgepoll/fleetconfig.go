package main

import (
	"context"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"

	"github.com/alecthomas/kong"
	"go.yaml.in/yaml/v3"

	"github.com/edgepoll/edgepoll/internal/cliflags"
	"github.com/edgepoll/edgepoll/internal/fleetfile"
	"github.com/edgepoll/edgepoll/sinks"
	"github.com/edgepoll/edgepoll/state/deadletter"
)

// fleetConn is one connection of a --config file (its name, connector key
// and the keys its entry set) with its whole configuration, validated.
type fleetConn struct {
	fleetfile.Conn
	CLI *CLI
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
	out, err := readFleet(k, base, n)
	if err != nil || base.Connection == "" {
		return out, err
	}
	for _, fc := range out {
		if fc.Name == base.Connection {
			return []*fleetConn{fc}, nil
		}
	}
	return nil, fileError("%s: %q is not a connection of %s", n.Name("connection"), base.Connection, base.Config)
}

// readFleet reads every connection of the file, each checked against those
// before it.
func readFleet(k *kong.Kong, base *CLI, n flagNamer) ([]*fleetConn, error) {
	root, err := fleetfile.Read(base.Config)
	if err != nil {
		return nil, fileError("%s: %v", n.Name("config"), err)
	}
	// A secret from the command line or the environment would go to every
	// connection's target: with --config each connection names its own.
	if s, ok := n.Given("secret-from"); ok {
		return nil, fileError("%s: with --config, give secret-from per connection in the file", s)
	}
	l := &fleetfile.Loader{Path: base.Config, Schema: fleetfile.NewSchema(k), Given: n.Given,
		KeyElsewhere: []string{"connector-key-parameter", "connector-key-secret"}}
	if err := l.RefuseGivenSecrets(); err != nil {
		return nil, err
	}
	conns, err := l.TopLevel(root)
	if err != nil {
		return nil, err
	}
	cp, err := newConnParser(base, n)
	if err != nil {
		return nil, err
	}
	l.Parse = cp.parse
	out := make([]*fleetConn, 0, len(conns))
	var unique fleetfile.Unique
	keys := map[string][]int{} // the connections of each connector key (fan-out: shareKey)
	for i, node := range conns {
		fc, err := cp.conn(l, i, node)
		if err == nil {
			err = checkUnique(&unique, keys, fc, out)
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
	return out, nil
}

// checkUnique refuses fc's name or dead-letter file if a connection before
// it (out) has it, and a connector key shared other than as shareKey allows.
func checkUnique(u *fleetfile.Unique, keys map[string][]int, fc *fleetConn, out []*fleetConn) error {
	if err := u.Name(&fc.Conn); err != nil {
		return err
	}
	if err := shareKey(fc, out, keys); err != nil {
		return err
	}
	if p, ok := deadletter.LocalFile(fc.CLI.DeadLetter); ok {
		return u.DeadLetter(&fc.Conn, p)
	}
	return nil
}

// connParser parses the command line again for each connection of the
// file, into one scratch CLI that each connection's configuration is then
// cloned from (a kong parser costs more to build than to run).
type connParser struct {
	base  *CLI
	n     flagNamer
	cli   *CLI
	k     *kong.Kong
	flags map[string]*kong.Flag
}

func newConnParser(base *CLI, n flagNamer) (*connParser, error) {
	cp := &connParser{base: base, n: n, cli: newCLI(), flags: map[string]*kong.Flag{}}
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

// parse parses the command line and environment again into the scratch
// CLI: fresh target configurations for the next connection.
func (cp *connParser) parse() (map[string]*kong.Flag, error) {
	if _, err := cp.k.Parse(cp.n.Args); err != nil {
		return nil, fmt.Errorf("internal error: %v", err)
	}
	cp.cli.noTarget = cp.base.noTarget
	return cp.flags, nil
}

// conn builds and validates connection i: read by l over a fresh parse,
// its secrets from AWS (secret-from), then validated as the command line
// would be, with the names the file gives its keys.
func (cp *connParser) conn(l *fleetfile.Loader, i int, node *yaml.Node) (*fleetConn, error) {
	c, err := l.Conn(i, node)
	if err != nil {
		return nil, err
	}
	cli := cp.cli
	if len(cli.SecretFrom) > 0 && !cli.noTarget {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := resolveSecretFrom(ctx, cp.k, cli.SecretFrom)
		cancel()
		if err != nil {
			return nil, fileError("%s%v", c.Prefix(), strings.TrimPrefix(err.Error(), "--"))
		}
	}
	names := &cliflags.FileNames{Path: l.Path, Prefix: c.Prefix(), Conn: c.Set, Top: l.Top}
	if err := cli.validate(flagNamer{cliflags.Namer{Args: cp.n.Args, Flags: cp.n.Flags, File: names}}); err != nil {
		return nil, err
	}
	cli.secrets = fleetfile.SecretValues(cp.k)
	fc := &fleetConn{Conn: *c, CLI: cli.clone()}
	fc.CLI.key = fc.Key
	return fc, nil
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
