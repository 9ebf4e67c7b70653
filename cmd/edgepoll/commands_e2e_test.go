package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		r := runBin(t, baseEnv(), "completion", shell)
		require.Equal(t, 0, r.code, "%s: %s", shell, r.stderr)
		assert.Contains(t, r.stdout, edgepollBin(t), shell)
		assert.Contains(t, r.stdout, "complete ", shell)
	}
	r := runBin(t, baseEnv(), "completion", "ksh")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "ksh")
}

// The shell runs the binary with COMP_LINE set; it answers with the
// candidates and exits 0 without running a cycle.
func TestCompletionAnswersTheShell(t *testing.T) {
	for line, want := range map[string]string{
		"edgepoll comp":     "completion",
		"edgepoll --mqtt-h": "--mqtt-host",
	} {
		r := runBin(t, baseEnv("COMP_LINE="+line, "ILERT_EDGE_CONNECTOR_KEY=k"), "--mode", "stdout")
		require.Equal(t, 0, r.code, "%q: %s", line, r.stderr)
		assert.Equal(t, want, strings.TrimSpace(r.stdout), line)
	}
}

// Root flags apply to every command, before or after it.
func TestRootFlagsBeforeAndAfterACommand(t *testing.T) {
	for _, args := range [][]string{
		{"--log-format", "xml", "completion", "bash"},
		{"completion", "bash", "--log-format", "xml"},
	} {
		r := runBin(t, baseEnv(), args...)
		assert.Equal(t, 2, r.code, "%q", args)
		assert.Contains(t, r.stderr, "--log-format", "%q", args)
		assert.Empty(t, r.stdout)
	}
	// A mistyped command is named as such (its text is not echoed: it
	// could be a secret given without its flag).
	r := runBin(t, baseEnv(), "statee", "show")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "state, check, dead-letter, completion")
	assert.NotContains(t, r.stderr, "statee")

	r = runBin(t, baseEnv(), "--help")
	require.Equal(t, 0, r.code)
	assert.True(t, strings.HasPrefix(r.stdout, "Usage: edgepoll [flags]"), r.stdout)
	assert.Contains(t, r.stdout, "completion")
}
