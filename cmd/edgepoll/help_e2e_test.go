package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A command's --help shows what is its own and points to edgepoll --help
// for the flags every command shares, instead of repeating all of them.
func TestCommandHelpShowsItsOwnFlags(t *testing.T) {
	for args, own := range map[string][]string{
		"state show --help":         {"Usage: edgepoll state show [flags]", "-o, --output="},
		"state set-cursor --help":   {"Usage: edgepoll state set-cursor <N> [flags]", "Arguments:", "<N>"},
		"state --help":              {"Usage: edgepoll state <command> [flags]", "state show", "state reset"},
		"dead-letter replay --help": {"Usage: edgepoll dead-letter replay [flags]"},
		"check --help":              {"Usage: edgepoll check [flags]"},
		"completion --help":         {"Usage: edgepoll completion <shell> [flags]", "bash, zsh or fish"},
	} {
		r := runBin(t, baseEnv(), strings.Fields(args)...)
		require.Equal(t, 0, r.code, "%s: %s", args, r.stderr)
		for _, s := range own {
			assert.Contains(t, r.stdout, s, args)
		}
		assert.Contains(t, r.stdout, "see edgepoll --help.", args)
		assert.NotContains(t, r.stdout, "--mqtt-host", "%s: the target's flags are edgepoll --help's", args)
		assert.NotContains(t, r.stdout, "--api-url=", args)
		assert.Less(t, strings.Count(r.stdout, "\n"), 30, "%s:\n%s", args, r.stdout)
	}
	r := runBin(t, baseEnv(), "--help")
	require.Equal(t, 0, r.code, r.stderr)
	for _, s := range []string{"--mqtt-host", "--api-url=", "--state=", "Commands:"} {
		assert.Contains(t, r.stdout, s, "edgepoll --help has everything")
	}
}

// Completion offers the values of the flags that have a fixed set.
func TestCompletionOffersFlagValues(t *testing.T) {
	for line, want := range map[string][]string{
		"edgepoll --log-format ":        {"json", "text"},
		"edgepoll --mqtt-qos ":          {"0", "1", "2"},
		"edgepoll state show --output ": {"json", "text"},
		"edgepoll --mode ":              modes(),
		"edgepoll --state ":             {"dynamodb:", "json:", "sqlite:"},
	} {
		r := runBin(t, baseEnv("COMP_LINE="+line, "ILERT_EDGE_CONNECTOR_KEY=k"), "--mode", "stdout")
		require.Equal(t, 0, r.code, "%q: %s", line, r.stderr)
		assert.ElementsMatch(t, want, strings.Fields(r.stdout), line)
	}
}
