package fleetfile

import (
	"path/filepath"
	"testing"

	"github.com/alecthomas/kong"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/internal/cliflags"
)

// testLoad is a Loader over testCLI: base is the command line's
// configuration, conn the fresh one each connection is parsed into; given
// are the flags the command line gave.
type testLoad struct {
	*Loader
	base, conn *testCLI
	given      map[string]bool
}

func newTestLoad(t *testing.T) *testLoad {
	t.Helper()
	tl := &testLoad{base: &testCLI{}, given: map[string]bool{}}
	tl.Loader = &Loader{
		Path:   "f.yaml",
		Schema: NewSchema(testParser(t, tl.base)),
		Given: func(flag string) (string, bool) {
			return "--" + flag, tl.given[flag]
		},
		Parse: func() (map[string]*kong.Flag, error) {
			tl.conn = &testCLI{}
			flags := map[string]*kong.Flag{}
			for _, f := range testParser(t, tl.conn).Model.Flags {
				flags[f.Name] = f
			}
			return flags, nil
		},
		KeyElsewhere: []string{"key-parameter", "key-secret"},
	}
	return tl
}

// load reads src's top level and its only connection.
func (tl *testLoad) load(t *testing.T, src string) (*Conn, error) {
	t.Helper()
	conns, err := tl.TopLevel(node(t, src))
	if err != nil {
		return nil, err
	}
	require.Len(t, conns, 1)
	return tl.Conn(0, conns[0])
}

func TestTopLevel(t *testing.T) {
	for src, want := range map[string]string{
		"mode: x\n":                                "f.yaml: connections: at least one connection is required (a list of entries with name and key-env)",
		"connections: []\n":                        "f.yaml: connections: at least one connection is required (a list of entries with name and key-env)",
		"name: a\nconnections: [{name: a}]\n":      "f.yaml: name: belongs to each connection, not to the top level",
		"key-env: K\nconnections: [{name: a}]\n":   "f.yaml: key-env: belongs to each connection, not to the top level",
		"edge_mode: x\nconnections: [{name: a}]\n": "f.yaml: edge_mode: unknown key (the file uses long flag names: mode)",
		"http-token: x\nconnections: [{name: a}]\n": "f.yaml: http-token: a secret is not accepted literally in the file; " +
			"name the environment variable that holds it: http-token-env: VARIABLE",
		"port: [[1]]\nconnections: [{name: a}]\n": "f.yaml: port: must be a value or a list of values",
		"loop: maybe\nconnections: [{name: a}]\n": `f.yaml: loop: bool value must be true, 1, yes, false, 0 or no but got "maybe"`,
		"mode: 1\nmode: 2\n":                      "f.yaml: mode: given twice (line 2)",
	} {
		_, err := newTestLoad(t).TopLevel(node(t, src))
		var fe *cliflags.UsageError
		require.ErrorAs(t, err, &fe, src)
		assert.Equal(t, want, fe.Msg, src)
	}
}

func TestTopLevelProcessSettingsAndDefaults(t *testing.T) {
	tl := newTestLoad(t)
	conns, err := tl.TopLevel(node(t, "loop: true\nport: 1\nhttp-token-env: T\nconnections: [{name: a}, {name: b}]\n"))
	require.NoError(t, err)
	assert.Len(t, conns, 2)
	assert.True(t, tl.base.Loop, "a process setting is set into the command line's configuration")
	assert.Equal(t, map[string]bool{"port": true, "http-token": true}, tl.Top, "the others are defaults")
	assert.Zero(t, tl.base.Port, "a default is not set at the top level")

	tl = newTestLoad(t)
	tl.given["loop"] = true
	_, err = tl.TopLevel(node(t, "loop: true\nconnections: [{name: a}]\n"))
	require.NoError(t, err)
	assert.False(t, tl.base.Loop, "the command line wins")
}

func TestConnPrecedence(t *testing.T) {
	t.Setenv("K", "the-key")
	tl := newTestLoad(t)
	c, err := tl.load(t, "port: 1\nmode: top\nconnections:\n  - name: a\n    key-env: K\n    port: 2\n")
	require.NoError(t, err)
	assert.Equal(t, Conn{Index: 0, Name: "a", Key: "the-key", KeyEnv: "K", Set: map[string]bool{"port": true}}, *c)
	assert.Equal(t, "connections[0] (a)", c.Label())
	assert.Equal(t, 2, tl.conn.Port, "the connection's own key over the top level")
	assert.Equal(t, "top", tl.conn.Mode, "the top level's default")

	tl = newTestLoad(t)
	tl.given["mode"] = true
	_, err = tl.load(t, "mode: top\nconnections:\n  - name: a\n    key-env: K\n")
	require.NoError(t, err)
	assert.Empty(t, tl.conn.Mode, "the command line over the top level (the parse gave it)")
}

func TestConnSecretsFromVariables(t *testing.T) {
	t.Setenv("K", "the-key")
	t.Setenv("TOKEN", "hunter2")
	tl := newTestLoad(t)
	_, err := tl.load(t, "http-token-env: TOKEN\nconnections:\n  - name: a\n    key-env: K\n")
	require.NoError(t, err)
	assert.Equal(t, "hunter2", tl.conn.Token)

	t.Setenv("EMPTY", "")
	for src, want := range map[string]string{
		"http-token-env: UNSET\nconnections:\n  - name: a\n    key-env: K\n":                            "f.yaml: http-token-env: the environment variable UNSET is not set",
		"connections:\n  - name: a\n    key-env: K\n    http-token-env: EMPTY\n":                        "connections[0] (a): http-token-env: the environment variable EMPTY is not set",
		"http-token-env: UNSET\nconnections:\n  - name: a\n    key-env: K\n    http-token-env: EMPTY\n": "connections[0] (a): http-token-env: the environment variable EMPTY is not set",
		"connections:\n  - name: a\n    key-env: K\n    port-env: X\n":                                  "connections[0] (a): port-env: unknown key",
	} {
		_, err := newTestLoad(t).load(t, src)
		assert.EqualError(t, err, want, src)
	}
}

func TestConnMistakes(t *testing.T) {
	t.Setenv("K", "the-key")
	t.Setenv("EMPTY", "")
	for src, want := range map[string]string{
		"connections:\n  - key-env: K\n":                                 "connections[0]: name: is required",
		"connections:\n  - name:\n":                                      "connections[0]: name: has no value",
		"connections:\n  - name: Noc\n":                                  `connections[0]: name: "Noc" must match [a-z0-9][a-z0-9-]{0,62}`,
		"connections:\n  - [a]\n":                                        "connections[0]: must be a mapping of key: value (line 2)",
		"connections:\n  - name: a\n    key: x\n":                        "connections[0] (a): key: a connector key is not accepted literally in the file; name the environment variable that holds it: key-env: VARIABLE",
		"connections:\n  - name: a\n    key-env: [[K]]\n":                "connections[0] (a): key-env: must be a value or a list of values",
		"connections:\n  - name: a\n    connections: []\n":               "connections[0] (a): connections: unknown key",
		"connections:\n  - name: a\n    loop: true\n":                    "connections[0] (a): loop: is a setting of the whole process: set it at the top level of the file or on the command line",
		"connections:\n  - name: a\n    edge_mode: x\n":                  "connections[0] (a): edge_mode: unknown key (the file uses long flag names: mode)",
		"connections:\n  - name: a\n    port: x\n":                       `connections[0] (a): port: expected a valid 64 bit int but got "x"`,
		"port: x\nconnections:\n  - name: a\n":                           `f.yaml: port: expected a valid 64 bit int but got "x"`,
		"connections:\n  - name: a\n":                                    "connections[0] (a): key-env: is required (the environment variable that holds this connection's connector key)",
		"connections:\n  - name: a\n    key-env: EMPTY\n":                "connections[0] (a): key-env: the environment variable EMPTY is not set",
		"connections:\n  - name: a\n    key-env: K\n    key-secret: s\n": "connections[0] (a): key-env: and key-parameter/key-secret are mutually exclusive",
	} {
		_, err := newTestLoad(t).load(t, src)
		var fe *cliflags.UsageError
		require.ErrorAs(t, err, &fe, src)
		assert.Equal(t, want, fe.Msg, src)
	}

	c, err := newTestLoad(t).load(t, "connections:\n  - name: a\n    key-parameter: /p\n")
	require.NoError(t, err, "the key from elsewhere needs no key-env")
	assert.Empty(t, c.Key)
}

func TestRefuseGivenSecrets(t *testing.T) {
	tl := newTestLoad(t)
	require.NoError(t, tl.RefuseGivenSecrets())
	tl.given["port"] = true
	require.NoError(t, tl.RefuseGivenSecrets(), "not a secret")
	tl.given["http-token"] = true
	assert.EqualError(t, tl.RefuseGivenSecrets(), "--http-token: with --config, a secret is given per connection in the file as http-token-env: VARIABLE")
}

func TestUnique(t *testing.T) {
	var u Unique
	a, b, a2 := &Conn{Index: 0, Name: "a"}, &Conn{Index: 1, Name: "b"}, &Conn{Index: 2, Name: "a"}
	require.NoError(t, u.Name(a))
	require.NoError(t, u.Name(b))
	assert.EqualError(t, u.Name(a2), `connections[2] (a): name: "a" is also the name of connections[0] (a)`)

	dir := t.TempDir()
	require.NoError(t, u.DeadLetter(a, filepath.Join(dir, "a.jsonl")))
	require.NoError(t, u.DeadLetter(b, filepath.Join(dir, "b.jsonl")))
	p := filepath.Join(dir, "x", "..", "a.jsonl")
	assert.EqualError(t, u.DeadLetter(a2, p), "connections[2] (a): dead-letter: "+p+
		" is also the dead letter of connections[0] (a): give each connection its own file (a dynamodb:TABLE may be shared)")
}
