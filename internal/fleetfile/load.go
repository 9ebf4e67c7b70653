package fleetfile

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/alecthomas/kong"
	"go.yaml.in/yaml/v3"

	"github.com/edgepoll/edgepoll/internal/cliflags"
)

// errorf is a mistake in the file: a usage error (exit 2). Its message
// holds no secret.
func errorf(format string, args ...any) error {
	return &cliflags.UsageError{Msg: fmt.Sprintf(format, args...)}
}

// Loader reads the connections of one file: the top level, then each
// connection's entry over the top-level defaults. What only the caller
// knows comes in its fields.
type Loader struct {
	Path   string
	Schema Schema // of the command line's parser: process settings are set into its flags
	// Given reports whether the command line or the environment set flag,
	// and the spelling (or variable) that set it: that wins over the file's
	// top level.
	Given func(flag string) (string, bool)
	// Parse parses the command line again into a fresh configuration and
	// returns its flags by name: each connection's keys are set into them.
	Parse func() (map[string]*kong.Flag, error)
	// KeyElsewhere are the flags that fetch a connection's connector key
	// from elsewhere than key-env (a parameter, a secret).
	KeyElsewhere []string
	// Top are the flags the top level sets as defaults (for naming them).
	Top map[string]bool

	defaults []Entry // top-level keys that are per-connection defaults
}

// RefuseGivenSecrets refuses a secret flag the command line or the
// environment gave: it would go to every connection's target, and with
// --config each connection names its own.
func (l *Loader) RefuseGivenSecrets() error {
	names := make([]string, 0, len(l.Schema.Flags))
	for name, f := range l.Schema.Flags {
		if f.Secret {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		if s, ok := l.Given(name); ok {
			return errorf("%s: with --config, a secret is given per connection in the file as %s%s: VARIABLE", s, name, EnvSuffix)
		}
	}
	return nil
}

// TopLevel reads the top-level keys of root: process settings into the
// schema's flags (unless the command line or environment gave them), the
// others kept as every connection's defaults. It returns the connections'
// entries.
func (l *Loader) TopLevel(root *yaml.Node) ([]*yaml.Node, error) {
	top, err := Entries(root, l.Path+": ")
	if err != nil {
		return nil, &cliflags.UsageError{Msg: err.Error()}
	}
	if l.Top == nil {
		l.Top = map[string]bool{}
	}
	var conns *yaml.Node
	for _, e := range top {
		if e.Key == KeyConns {
			conns = e.Value
			continue
		}
		if err := l.topEntry(e); err != nil {
			return nil, err
		}
	}
	if conns == nil || conns.Kind != yaml.SequenceNode || len(conns.Content) == 0 {
		return nil, errorf("%s: %s: at least one connection is required (a list of entries with name and key-env)", l.Path, KeyConns)
	}
	return conns.Content, nil
}

// topEntry reads one top-level key other than connections.
func (l *Loader) topEntry(e Entry) error {
	where := l.Path + ": " + e.Key
	switch e.Key {
	case KeyName, KeyKeyEnv, KeyKey:
		return errorf("%s: belongs to each connection, not to the top level", where)
	}
	name, viaEnv, problem := l.Schema.Check(e.Key)
	if problem != "" {
		return errorf("%s: %s", where, problem)
	}
	if f := l.Schema.Flags[name]; f.Process {
		if _, given := l.Given(name); given {
			return nil // the command line or environment wins
		}
		v, err := Scalar(e.Value)
		if err == nil {
			err = SetFlag(f.Flag, v)
		}
		if err != nil {
			return errorf("%s: %v", where, err)
		}
		return nil
	}
	if !viaEnv {
		if _, err := Scalar(e.Value); err != nil {
			return errorf("%s: %v", where, err)
		}
	}
	l.Top[name] = true
	l.defaults = append(l.defaults, e)
	return nil
}

// Conn is one connection of the file as read.
type Conn struct {
	Index int
	Name  string
	// Key is the connector key read from KeyEnv; empty when the key comes
	// from elsewhere (Loader.KeyElsewhere).
	Key    string
	KeyEnv string
	// Set are the flags the connection's entry sets (for naming them).
	Set map[string]bool
}

// Label names the connection in errors and logs: "connections[1] (noc)".
func (c *Conn) Label() string { return fmt.Sprintf("connections[%d] (%s)", c.Index, c.Name) }

// Prefix starts an error about one of the connection's keys.
func (c *Conn) Prefix() string { return c.Label() + ": " }

// connLoad is one connection being read.
type connLoad struct {
	*Loader
	*Conn
	flags     map[string]*kong.Flag // of the fresh configuration
	secretEnv map[string]string     // secret flag -> the variable that holds it
}

// Conn reads connection i from its entry: the command line parsed again
// (Parse), then the top-level defaults the command line and environment did
// not give, then the connection's own keys, its secrets from the variables
// it names and its connector key from key-env.
func (l *Loader) Conn(i int, node *yaml.Node) (*Conn, error) {
	anon := fmt.Sprintf("%s[%d]: ", KeyConns, i)
	entries, err := Entries(node, anon)
	if err != nil {
		return nil, &cliflags.UsageError{Msg: err.Error()}
	}
	name, err := connName(entries, anon)
	if err != nil {
		return nil, err
	}
	flags, err := l.Parse()
	if err != nil {
		return nil, err
	}
	c := &connLoad{Loader: l, Conn: &Conn{Index: i, Name: name, Set: map[string]bool{}}, flags: flags, secretEnv: map[string]string{}}
	if err := c.apply(entries); err != nil {
		return nil, err
	}
	if err := c.secrets(); err != nil {
		return nil, err
	}
	if err := c.key(); err != nil {
		return nil, err
	}
	return c.Conn, nil
}

// connName is the name of a connection entry, checked.
func connName(entries []Entry, anon string) (string, error) {
	name := ""
	for _, e := range entries {
		if e.Key == KeyName {
			v, err := Scalar(e.Value)
			if err != nil {
				return "", errorf("%s%s: %v", anon, KeyName, err)
			}
			name = v
		}
	}
	if name == "" {
		return "", errorf("%s%s: is required", anon, KeyName)
	}
	if !ValidName(name) {
		return "", errorf("%s%s: %q must match [a-z0-9][a-z0-9-]{0,62}", anon, KeyName, name)
	}
	return name, nil
}

// set1 sets the flag of one entry (where names it in errors); a secret's
// -env form is noted for secrets.
func (c *connLoad) set1(e Entry, where string) error {
	name, viaEnv, problem := c.Schema.Check(e.Key)
	if problem != "" {
		return errorf("%s%s: %s", where, e.Key, problem)
	}
	v, err := Scalar(e.Value)
	if err != nil {
		return errorf("%s%s: %v", where, e.Key, err)
	}
	if viaEnv {
		c.secretEnv[name] = v
		return nil
	}
	if err := SetFlag(c.flags[name], v); err != nil {
		return errorf("%s%s: %v", where, e.Key, err)
	}
	return nil
}

// apply sets the top-level defaults the command line and environment did
// not give, then the connection's own entries.
func (c *connLoad) apply(entries []Entry) error {
	for _, e := range c.defaults {
		name, _, _ := c.Schema.Check(e.Key)
		if _, given := c.Given(name); given {
			continue
		}
		if err := c.set1(e, c.Path+": "); err != nil {
			return err
		}
	}
	prefix := c.Prefix()
	for _, e := range entries {
		switch e.Key {
		case KeyName:
			continue
		case KeyKeyEnv:
			v, err := Scalar(e.Value)
			if err != nil {
				return errorf("%s%s: %v", prefix, e.Key, err)
			}
			c.KeyEnv = v
			continue
		case KeyKey:
			return errorf("%s%s: a connector key is not accepted literally in the file; name the environment variable that holds it: %s: VARIABLE", prefix, KeyKey, KeyKeyEnv)
		case KeyConns:
			return errorf("%s%s: unknown key", prefix, e.Key)
		}
		name, _, problem := c.Schema.Check(e.Key)
		if problem == "" && c.Schema.Flags[name].Process {
			return errorf("%s%s: is a setting of the whole process: set it at the top level of the file or on the command line", prefix, e.Key)
		}
		if err := c.set1(e, prefix); err != nil {
			return err
		}
		c.Set[name] = true
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
		where := c.Prefix() + name + EnvSuffix
		if !c.Set[name] && c.Top[name] {
			where = c.Path + ": " + name + EnvSuffix
		}
		val, ok := os.LookupEnv(c.secretEnv[name])
		if !ok || val == "" {
			return errorf("%s: the environment variable %s is not set", where, c.secretEnv[name])
		}
		if err := SetFlag(c.flags[name], val); err != nil {
			return errorf("%s: the value of %s is not valid", where, c.secretEnv[name])
		}
	}
	return nil
}

// key reads the connector key from key-env, unless a KeyElsewhere flag
// fetches it.
func (c *connLoad) key() error {
	for _, name := range c.KeyElsewhere {
		if f := c.flags[name]; f != nil && !f.Target.IsZero() {
			if c.KeyEnv != "" {
				return errorf("%s%s: and %s are mutually exclusive", c.Prefix(), KeyKeyEnv, strings.Join(c.KeyElsewhere, "/"))
			}
			return nil
		}
	}
	if c.KeyEnv == "" {
		return errorf("%s%s: is required (the environment variable that holds this connection's connector key)", c.Prefix(), KeyKeyEnv)
	}
	c.Key = os.Getenv(c.KeyEnv)
	if c.Key == "" {
		return errorf("%s%s: the environment variable %s is not set", c.Prefix(), KeyKeyEnv, c.KeyEnv)
	}
	return nil
}

// Unique refuses two connections of one file with one name or one
// dead-letter file. The zero value is ready; check the connections in file
// order.
type Unique struct {
	names, deadFiles map[string]*Conn
}

// Name refuses c's name if an earlier connection has it.
func (u *Unique) Name(c *Conn) error {
	if u.names == nil {
		u.names = map[string]*Conn{}
	}
	if d, dup := u.names[c.Name]; dup {
		return errorf("%s: %s: %q is also the name of %s", c.Label(), KeyName, c.Name, d.Label())
	}
	u.names[c.Name] = c
	return nil
}

// DeadLetter refuses c's dead-letter file at path if an earlier connection
// writes it: a dead-letter file holds no connection, and replaying a shared
// one would send one connection's items to another's target.
func (u *Unique) DeadLetter(c *Conn, path string) error {
	if u.deadFiles == nil {
		u.deadFiles = map[string]*Conn{}
	}
	abs, _ := filepath.Abs(path)
	if d, dup := u.deadFiles[abs]; dup {
		return errorf("%s: dead-letter: %s is also the dead letter of %s: give each connection its own file (a dynamodb:TABLE may be shared)", c.Label(), path, d.Label())
	}
	u.deadFiles[abs] = c
	return nil
}
