package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/edgepoll/edgepoll/internal/dynalitetest"
	"github.com/edgepoll/edgepoll/internal/mosquittotest"
	"github.com/edgepoll/edgepoll/internal/testenv"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
)

// checkLines maps each check's name to its verdict ("ok (...)" or "FAIL: ...").
func checkLines(t *testing.T, out string) map[string]string {
	t.Helper()
	lines := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		name, verdict, ok := strings.Cut(l, ": ")
		require.True(t, ok, "line %q", l)
		lines[strings.Fields(name)[0]] = verdict
	}
	require.Len(t, lines, 4, out)
	return lines
}

// A check delivers nothing and moves nothing: the cursor is where it was
// and the only poll is the one that checked the key (after-id = cursor).
func assertCheckedNothingMoved(t *testing.T, r *stateRig, polls int) {
	assertCheckedNothingMovedAfter(t, r, polls, "2")
}

// assertCheckedNothingMovedAfter: the key was checked with after-id
// afterID (0 when the check's own store is another, unreadable one).
func assertCheckedNothingMovedAfter(t *testing.T, r *stateRig, polls int, afterID string) {
	t.Helper()
	s := r.show(t)
	require.NotNil(t, s.Cursor)
	assert.Equal(t, int64(2), *s.Cursor, "cursor unmoved")
	reqs := r.api.Requests()
	assert.Len(t, reqs, polls)
	for _, q := range reqs {
		assert.Equal(t, afterID, q.Query["after-id"])
	}
}

func TestCheckGoodSetupEveryBackend(t *testing.T) {
	backends, ddb := stateBackendsAll(t)
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			r := newStateRig(t, backend, 5, ddb)
			tg := newTarget(t)
			require.Equal(t, 0, r.run(t, "state", "set-cursor", "2", "--create").code)
			res := r.run(t, "check", "--mode", "http", "--http-url", tg.srv.URL+"/hook")
			require.Equal(t, 0, res.code, res.stdout+res.stderr)
			lines := checkLines(t, res.stdout)
			for name, v := range lines {
				assert.True(t, strings.HasPrefix(v, "ok"), "%s: %s", name, v)
			}
			assert.Contains(t, lines["ilert"], "3 items waiting after cursor 2")
			assert.Empty(t, tg.got(), "nothing delivered")
			assertCheckedNothingMoved(t, r, 1)
			assert.NotContains(t, res.stdout+res.stderr, e2eKey)
		})
	}
}

func TestCheckFailures(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "deliver.sh")
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\necho delivered >> "+filepath.Join(dir, "ran")+"\n"), 0o755))
	kafka, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "edge"))
	require.NoError(t, err)
	defer kafka.Close()
	brokers := strings.Join(kafka.ListenAddrs(), ",")
	mq := mosquittotest.Start(t, "allow_anonymous false\npassword_file /dev/null")
	mqOpen := mosquittotest.Start(t, "allow_anonymous true")
	sub := mosquittotest.Subscribe(t, mqOpen.Port, "edge/#", 1)
	closed := strconv.Itoa(testenv.FreePort(t))
	ddb := dynalitetest.Start(t)

	cases := []struct {
		name    string
		args    []string
		failing string // the check that fails ("" = all ok)
		want    string
	}{
		{"kafka ok", []string{"--mode", "kafka", "--kafka-brokers", brokers, "--topic", "edge"}, "", "topic \"edge\" exists"},
		{"kafka missing topic", []string{"--mode", "kafka", "--kafka-brokers", brokers, "--topic", "nope"}, "target", "nope"},
		{"kafka unreachable", []string{"--mode", "kafka", "--kafka-brokers", "127.0.0.1:" + closed, "--topic", "edge", "--check-timeout", "3s"}, "target", "127.0.0.1:" + closed},
		{"mqtt ok", []string{"--mode", "mqtt", "-m", "127.0.0.1", "-q", strconv.Itoa(mqOpen.Port), "--topic", "edge/x"}, "", "CONNECT accepted"},
		{"mqtt refused", []string{"--mode", "mqtt", "-m", "127.0.0.1", "-q", strconv.Itoa(mq.Port), "--topic", "edge/x"}, "target", "refused"},
		{"mqtt unreachable", []string{"--mode", "mqtt", "-m", "127.0.0.1", "-q", closed, "--topic", "edge/x"}, "target", "127.0.0.1:" + closed},
		{"http unreachable", []string{"--mode", "http", "--http-url", "http://127.0.0.1:" + closed + "/hook"}, "target", "127.0.0.1:" + closed},
		{"https without TLS", []string{"--mode", "http", "--http-url", "https://" + strings.TrimPrefix(newTarget(t).srv.URL, "http://")}, "target", "TLS"},
		{"script ok", []string{"--mode", "script", "--script", script}, "", "is executable"},
		{"sqlite unwritable", []string{"--mode", "stdout", "--state", "sqlite:/proc/edgepoll-check.db"}, "state", "/proc/edgepoll-check.db"},
		{"json unwritable", []string{"--mode", "stdout", "--state", "json:/proc/edgepoll-check.json"}, "state", "/proc/edgepoll-check.json"},
		{"dynamodb missing table", []string{"--mode", "stdout", "--state", "dynamodb:no-such-table"}, "state", "no-such-table"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newStateRig(t, "sqlite", 5, nil)
			r.vars = append(r.vars, ddb.Env()...)
			require.Equal(t, 0, r.run(t, "state", "set-cursor", "2", "--create").code)
			// The case's --state (if any) comes last and wins.
			res := runBin(t, r.vars, append([]string{"check", "--state", r.state}, tc.args...)...)
			lines := checkLines(t, res.stdout)
			for name, v := range lines {
				if name == tc.failing {
					assert.True(t, strings.HasPrefix(v, "FAIL: "), "%s: %s", name, v)
					assert.Contains(t, v, tc.want)
				} else {
					assert.True(t, strings.HasPrefix(v, "ok"), "%s: %s", name, v)
				}
			}
			if tc.failing == "" {
				assert.Equal(t, 0, res.code, res.stdout+res.stderr)
				assert.Contains(t, res.stdout, tc.want)
			} else {
				assert.Equal(t, 1, res.code, res.stdout+res.stderr)
			}
			afterID := "2"
			if tc.failing == "state" {
				afterID = "0"
			}
			assertCheckedNothingMovedAfter(t, r, 1, afterID)
		})
	}
	_, err = os.Stat(filepath.Join(dir, "ran"))
	assert.ErrorIs(t, err, os.ErrNotExist, "the script never ran")
	assert.Empty(t, sub.Got(), "nothing published")
}

func TestCheckRefusedKeyAndHAMode(t *testing.T) {
	r := newStateRig(t, "json", 5, nil)
	tg := newTarget(t)
	require.Equal(t, 0, r.run(t, "state", "set-cursor", "2", "--create").code)
	args := []string{"check", "--mode", "http", "--http-url", tg.srv.URL}

	r.api.Fail(ilerttest.Fault{Status: http.StatusUnauthorized})
	res := r.run(t, args...)
	assert.Equal(t, 1, res.code)
	assert.Contains(t, checkLines(t, res.stdout)["ilert"], "FAIL: ")
	assert.Contains(t, res.stdout, "authentication failed — check integration key")
	assertCheckedNothingMoved(t, r, 1)

	res = r.run(t, append(args, "--cluster-id", "c1", "--instance-id", "i1")...)
	assert.Equal(t, 0, res.code, res.stdout+res.stderr)
	assert.Contains(t, checkLines(t, res.stdout)["ilert"], "ok (skipped")
	assertCheckedNothingMoved(t, r, 1)
	assert.Empty(t, tg.got())

	// A bad configuration is exit 2 naming the flag, before any check.
	res = r.run(t, "check", "--mode", "http")
	assert.Equal(t, 2, res.code)
	assert.Contains(t, res.stderr, "--http-url")
	assert.Empty(t, res.stdout)
	res = r.run(t, "check", "--mode", "script", "--script", "/nonexistent/x.sh")
	assert.Equal(t, 2, res.code)
	assert.Contains(t, res.stderr, "--script")
}
