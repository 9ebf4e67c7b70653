package fleetfile

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/alecthomas/kong"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

type testCLI struct {
	Config string `name:"config"`
	Mode   string `name:"mode" aliases:"edge_mode"`
	Token  string `name:"http-token" secret:""`
	Loop   bool   `name:"loop" process:""`
	Port   int    `name:"port"`
	// KeyParameter and KeySecret fetch the connector key from elsewhere.
	KeyParameter string `name:"key-parameter"`
	KeySecret    string `name:"key-secret"`
}

func testParser(t *testing.T, cli *testCLI) *kong.Kong {
	t.Helper()
	k, err := kong.New(cli, kong.Exit(func(int) {}), kong.Writers(io.Discard, io.Discard))
	require.NoError(t, err)
	return k
}

func TestSchemaCheck(t *testing.T) {
	s := NewSchema(testParser(t, &testCLI{}))
	assert.NotContains(t, s.Flags, "config")
	assert.NotContains(t, s.Flags, "help")
	assert.True(t, s.Flags["loop"].Process)
	assert.True(t, s.Flags["http-token"].Secret)

	check := func(key string) []any {
		name, viaEnv, problem := s.Check(key)
		return []any{name, viaEnv, problem}
	}
	assert.Equal(t, []any{"mode", false, ""}, check("mode"))
	assert.Equal(t, []any{"http-token", true, ""}, check("http-token-env"))
	assert.Equal(t, []any{"http-token", false, "a secret is not accepted literally in the file; " +
		"name the environment variable that holds it: http-token-env: VARIABLE"}, check("http-token"))
	assert.Equal(t, []any{"", false, "unknown key (the file uses long flag names: mode)"}, check("edge_mode"))
	assert.Equal(t, []any{"", false, "unknown key"}, check("mode-env"), "only a secret has an -env form")
	assert.Equal(t, []any{"", false, "unknown key"}, check("nope"))
}

func node(t *testing.T, src string) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(src), &doc))
	return doc.Content[0]
}

func TestEntries(t *testing.T) {
	es, err := Entries(node(t, "b: 1\na: [x, y]\n"), "f: ")
	require.NoError(t, err)
	require.Len(t, es, 2)
	assert.Equal(t, "b", es[0].Key, "file order")
	v, err := Scalar(es[1].Value)
	require.NoError(t, err)
	assert.Equal(t, "x,y", v, "a list is joined with commas")

	_, err = Entries(node(t, "a: 1\na: 2\n"), "f: ")
	assert.EqualError(t, err, "f: a: given twice (line 2)")
	_, err = Entries(node(t, "- a\n"), "connections[0]: ")
	assert.EqualError(t, err, "connections[0]: must be a mapping of key: value (line 1)")
	_, err = Entries(node(t, "[a]: 1\n"), "f: ")
	assert.EqualError(t, err, "f: keys must be plain names (line 1)")
}

func TestScalar(t *testing.T) {
	_, err := Scalar(node(t, "a:\n").Content[1])
	assert.EqualError(t, err, "has no value")
	_, err = Scalar(node(t, "a: [[x]]\n").Content[1])
	assert.EqualError(t, err, "must be a value or a list of values")
	_, err = Scalar(node(t, "a: {b: c}\n").Content[1])
	assert.EqualError(t, err, "must be a value or a list of values")
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	_, err := Read(p)
	assert.ErrorContains(t, err, "no such file or directory")
	require.NoError(t, os.WriteFile(p, nil, 0o600))
	_, err = Read(p)
	assert.EqualError(t, err, p+": empty file (want a mapping with connections:)")
	require.NoError(t, os.WriteFile(p, []byte("a: [\n"), 0o600))
	_, err = Read(p)
	assert.ErrorContains(t, err, p+": yaml:")
	require.NoError(t, os.WriteFile(p, []byte("connections: []\n"), 0o600))
	root, err := Read(p)
	require.NoError(t, err)
	assert.Equal(t, yaml.MappingNode, root.Kind)
}

func TestSetFlagAndSecretValues(t *testing.T) {
	cli := &testCLI{}
	k := testParser(t, cli)
	s := NewSchema(k)
	require.NoError(t, SetFlag(s.Flags["port"].Flag, "8080"))
	assert.Equal(t, 8080, cli.Port)
	assert.Error(t, SetFlag(s.Flags["port"].Flag, "x"))
	assert.Empty(t, SecretValues(k))
	require.NoError(t, SetFlag(s.Flags["http-token"].Flag, "hunter2"))
	assert.Equal(t, []string{"hunter2"}, SecretValues(k))
}

func TestValidName(t *testing.T) {
	assert.True(t, ValidName("noc-1"))
	for _, bad := range []string{"", "-a", "Noc", "a_b", string(make([]byte, 64))} {
		assert.False(t, ValidName(bad), "%q", bad)
	}
}
