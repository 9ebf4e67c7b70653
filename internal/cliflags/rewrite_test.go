package cliflags

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type rewriteCLI struct {
	Port      int    `name:"port" aliases:"edge_port" env:"TEST_REWRITE_PORT"`
	Heartbeat string `name:"heartbeat" short:"b" env:"TEST_REWRITE_HB" secret:""`
	Verbose   int    `name:"verbose" short:"v" type:"counter"`
	Show      struct {
	} `cmd:"" help:"Show it."`
	Hidden struct {
	} `cmd:"" hidden:""`
}

// rewriteParse is Rewrite of kong's error for args.
func rewriteParse(t *testing.T, hints map[string]string, args ...string) string {
	t.Helper()
	k := mustParser(t, &rewriteCLI{})
	_, err := k.Parse(args)
	require.Error(t, err, args)
	return NewNamer(k, args).Rewrite(err.Error(), hints)
}

// Rewrite names the flag as the user spelled it and shows no value; an
// unexpected argument is not shown, unless a hint is given for it.
func TestRewrite(t *testing.T) {
	assert.Equal(t, "--edge_port: expected a valid 64 bit int (the value is not shown)", rewriteParse(t, nil, "--edge_port", "x1234"))
	t.Setenv("TEST_REWRITE_PORT", "y1234")
	assert.Equal(t, "TEST_REWRITE_PORT: expected a valid 64 bit int (the value is not shown)", rewriteParse(t, nil))
	t.Setenv("TEST_REWRITE_PORT", "1")

	assert.Equal(t, "unexpected argument (not shown: edgepoll takes flags, and optionally first a command: show)",
		rewriteParse(t, nil, "s3cr3tish"))
	assert.Equal(t, "unexpected argument (not shown: edgepoll takes flags, and optionally first a command: show), did you mean \"show\"?",
		rewriteParse(t, nil, "shwo"))
	assert.Equal(t, "no daemon here", rewriteParse(t, map[string]string{"daemon": "no daemon here"}, "daemon"))
}

// A message that still holds a secret's value (a secret flag's, however it
// was given, or one of the secrets passed) is replaced.
func TestRewriteWithholdsSecrets(t *testing.T) {
	k := mustParser(t, &rewriteCLI{})
	const whole = "invalid command line (the message is not shown: it would contain a secret)"
	for _, args := range [][]string{
		{"--heartbeat", "hunter22"}, {"--heartbeat=hunter22"}, {"-bhunter22"}, {"-b=hunter22"}, {"-vb", "hunter22"}, {"-b", " hunter22\n"},
	} {
		n := NewNamer(k, args)
		assert.Equal(t, whole, n.Rewrite("bad: hunter22 here", nil), args)
		assert.Equal(t, "--port: invalid value (not shown: it is a secret)", n.Rewrite("--port: odd hunter22", nil), args)
	}
	n := NewNamer(k, []string{"--heartbeat", "abc"})
	assert.Equal(t, "bad: abc", n.Rewrite("bad: abc", nil), "a value shorter than 4 is too common to withhold")
	assert.Equal(t, whole, n.Rewrite("bad: the-key", nil, "the-key\n"))
	assert.Equal(t, "bad: the-key", n.Rewrite("bad: the-key", nil, "", " "))
	t.Setenv("TEST_REWRITE_HB", "from-env")
	assert.Equal(t, whole, NewNamer(k, nil).Rewrite("bad: from-env", nil))
}
