package main

import (
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/internal/cliflags"
)

// cliflags.Scan finds, in edgepoll's own flags, the spellings a command line used, skipping values
// (a value that looks like a flag is not one) and reading short clusters.
func TestCmdlineFlags(t *testing.T) {
	k, err := newParser(newCLI(), io.Discard, io.Discard)
	require.NoError(t, err)
	flags := newFlagNamer(k, nil).Flags
	spellings := func(args ...string) map[string][]string {
		out := map[string][]string{}
		for _, u := range cliflags.Scan(args, flags) {
			out[u.Name] = u.Spellings
		}
		return out
	}
	assert.Equal(t, map[string][]string{"mode": {"--mode", "--edge_mode"}, "http-url": {"--http-url"}},
		spellings("--mode", "http", "--http-url", "--edge_mode", "--edge_mode=stdout"), "--edge_mode after --http-url is its value")
	assert.Equal(t, map[string][]string{"verbose": {"-v", "-v"}, "ilagent-db": {"-f"}, "port": {"--port"}},
		spellings("-vvf", "-p", "--port", "1"), "-vvf: f takes the next argument (-p) as its value")
	assert.Equal(t, map[string][]string{"mqtt-host": {"-m"}, "mqtt-port": {"-q", "--mqtt_port"}},
		spellings("-mhost", "-q", "1", "--mqtt_port", "2", "--", "--mode", "x"), "nothing after --")
	assert.Equal(t, map[string][]string{"state": {"--state"}}, spellings("state", "show", "--output", "json", "--state", "json:x"),
		"a command's own flags are passed over")

	assert.NoError(t, cliflags.GivenTwice(cliflags.Scan([]string{"-v", "--verbose", "--mode", "a", "--mode", "b"}, flags), flags))
	err = cliflags.GivenTwice(cliflags.Scan([]string{"-f", "none", "--file", "x"}, flags), flags)
	require.Error(t, err)
	assert.Equal(t, "-f and --file: the same setting (--ilagent-db) given twice under two names; give it once", err.Error())
}
