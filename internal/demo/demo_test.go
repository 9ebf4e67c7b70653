package demo

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/internal/testenv"
)

// The demo shows a failed delivery retried with nothing lost, echoes
// commands that carry the environment they need, and points at state that
// still exists, with a command that works when copied.
func TestDemo(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "edgepoll")
	build := exec.Command("go", "build", "-o", bin, "./cmd/edgepoll")
	build.Dir = testenv.RepoRoot()
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))

	var buf bytes.Buffer
	require.NoError(t, Run(&buf, bin, 5, t.TempDir()), buf.String())
	text := buf.String()
	assert.Contains(t, text, "exit code 1", "a failed delivery")
	assert.Contains(t, text, "503")
	assert.Contains(t, text, "8 events delivered exactly once")

	cmds := regexp.MustCompile(`(?m)^\$ (.*)$`).FindAllStringSubmatch(text, -1)
	require.Len(t, cmds, 4)
	for _, c := range cmds {
		assert.True(t, strings.HasPrefix(c[1], "ILERT_API_HOST=http://127.0.0.1:"), c[1])
		assert.Contains(t, c[1], "ILERT_EDGE_CONNECTOR_KEY="+demoKey)
	}

	// The state is still there, and the printed command shows it.
	m := regexp.MustCompile(`(?m)^  (ILERT_EDGE_CONNECTOR_KEY=\S+) (\S+) (state show --state \S+)$`).FindStringSubmatch(text)
	require.NotNil(t, m, text)
	show := exec.Command(m[2], strings.Fields(m[3])...)
	show.Env = []string{"PATH=" + os.Getenv("PATH"), m[1]}
	got, err := show.CombinedOutput()
	require.NoError(t, err, string(got))
	assert.Contains(t, string(got), "cursor      8")
	// Every alert's story is coherent across the runs: created first, then
	// acknowledged, then resolved, no state twice (so no payload repeated
	// under a new item id).
	order := map[string]int{"alert-created": 0, "alert-acknowledged": 1, "alert-resolved": 2}
	last := map[string]int{}
	lines := regexp.MustCompile(`(?m)^  receiver <- item \d+\s+(\S+)\s+alert (\S+) `).FindAllStringSubmatch(text, -1)
	require.Len(t, lines, 8, text)
	for _, l := range lines {
		kind, alert := l[1], l[2]
		prev, seen := last[alert]
		if !seen {
			assert.Equal(t, "alert-created", kind, "alert %s starts with %s", alert, kind)
		} else {
			assert.Greater(t, order[kind], prev, "alert %s: %s after %d", alert, kind, prev)
		}
		last[alert] = order[kind]
	}

	// The demo says its cycle commands stop working when it ends, and they
	// do: the fake API is gone.
	assert.Contains(t, text, "the cycle commands above no longer work")
	cycle := strings.Fields(cmds[0][1])
	run := exec.Command(cycle[2], cycle[3:]...)
	run.Env = []string{"PATH=" + os.Getenv("PATH"), cycle[0], cycle[1]}
	got, err = run.CombinedOutput()
	assert.Error(t, err, "a cycle command after the demo: %s", got)

	rm := regexp.MustCompile(`(?m)^  rm -r (\S+)$`).FindStringSubmatch(text)
	require.NotNil(t, rm)
	_, err = os.Stat(rm[1])
	assert.NoError(t, err, "the state directory the demo names exists")
}
