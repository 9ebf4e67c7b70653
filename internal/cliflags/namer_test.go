package cliflags

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// Name names a flag as the user set it: the spelling on the command line
// (the last one), else its variable, else, with --config, the key in the
// connection's entry or at the file's top level.
func TestNamer(t *testing.T) {
	k, _ := testParser(t)
	n := NewNamer(k, []string{"--edge_mode", "x", "-f", "a", "--mode=y", "-vv", "--", "-p"})
	assert.Equal(t, []string{"show"}, n.Commands)
	assert.Equal(t, "--mode", n.Name("mode"), "the last spelling")
	assert.Equal(t, "-f", n.Name("ilagent-db"))
	assert.Equal(t, "-v", n.Name("verbose"))
	assert.Equal(t, "-p", n.Name("port"), "a short flag after -- is still its spelling")
	assert.Equal(t, "--http-url", n.Name("http-url"), "not given: the canonical name")
	_, given := n.Given("http-url")
	assert.False(t, given)
	_, given = n.Given("nope")
	assert.False(t, given)

	n.File = &FileNames{Path: "c.yaml", Prefix: "connections[0] (a): ",
		Conn: map[string]bool{"mode": true}, Top: map[string]bool{"mqtt-host": true}}
	assert.Equal(t, "connections[0] (a): mode", n.Name("mode"), "the connection's key wins")
	assert.Equal(t, "-f", n.Name("ilagent-db"))
	assert.Equal(t, "c.yaml: mqtt-host", n.Name("mqtt-host"))
	assert.Equal(t, "connections[0] (a): http-url", n.Name("http-url"))
}

func TestNamerGivenByVariable(t *testing.T) {
	type cli struct {
		URL string `name:"http-url" env:"EDGEPOLL_HTTP_URL"`
	}
	t.Setenv("EDGEPOLL_HTTP_URL", "x")
	k := mustParser(t, &cli{})
	s, given := NewNamer(k, nil).Given("http-url")
	assert.True(t, given)
	assert.Equal(t, "EDGEPOLL_HTTP_URL", s)
}

// ValueProblem never echoes the value.
func TestValueProblem(t *testing.T) {
	for reason, want := range map[string]string{
		` expected a value but got "hunter2" (from envar EDGEPOLL_X)`: "expected a value (the value is not shown)",
		` expected string value but got "<EOL>" (<EOL>)`:              "needs a value",
		` expected string value but got "-x" (short flag); perhaps try --f="-x"?`: `needs a value (a value that starts with "-" must be written as --f=VALUE; ` +
			`the argument is not shown)`,
		` "hunter2" is not one of text, json`: "(value not shown) is not one of text, json",
	} {
		assert.Equal(t, want, ValueProblem("--f", reason), reason)
	}
}
