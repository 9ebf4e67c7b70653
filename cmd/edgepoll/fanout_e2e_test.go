package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/internal/dynalitetest"
	"github.com/edgepoll/edgepoll/internal/runner"
	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
)

const fanKey = "iec1-fanout-Secret-key"

// fanRig is one edge connection (one key at the fake API) fanned out to
// several HTTP targets: each connection posts to its own path of an HTTP
// receiver, except "down", whose target is a port nobody listens on until
// bring up starts a receiver there.
type fanRig struct {
	api   *ilerttest.API
	apiSv *httptest.Server
	tg    *fleetTarget
	dir   string
	down  *fleetTarget // the receiver of "down" once it is up
	addr  string       // where "down" posts
	env   []string     // more variables for every run (DynamoDB's endpoint)
}

func newFanRig(t *testing.T) *fanRig {
	r := &fanRig{api: ilerttest.New(fanKey), tg: newFleetTarget(t), dir: t.TempDir()}
	r.apiSv = r.api.Start()
	t.Cleanup(r.apiSv.Close)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	r.addr = l.Addr().String()
	require.NoError(t, l.Close()) // down: connection refused
	return r
}

// up starts a receiver on the address of the target that was down.
func (r *fanRig) up(t *testing.T) {
	l, err := net.Listen("tcp", r.addr)
	require.NoError(t, err)
	r.down = newFleetTarget(t)
	r.down.srv.Close()
	srv := httptest.NewUnstartedServer(r.down.srv.Config.Handler)
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
}

// config writes a file whose connections all read the one key.
func (r *fanRig) config(t *testing.T, top string, names ...string) string {
	var b strings.Builder
	b.WriteString("mode: http\nstate: " + top + "\nconnections:\n")
	for _, n := range names {
		url := r.tg.srv.URL + "/" + n
		if n == "down" {
			url = "http://" + r.addr + "/down"
		}
		fmt.Fprintf(&b, "  - name: %s\n    key-env: FAN_KEY\n    http-url: %s\n", n, url)
	}
	p := filepath.Join(r.dir, "edgepoll.yaml")
	require.NoError(t, os.WriteFile(p, []byte(b.String()), 0o644))
	return p
}

func (r *fanRig) run(t *testing.T, cfg string, args ...string) result {
	t.Helper()
	env := baseEnv(append([]string{"ILERT_API_HOST=" + r.apiSv.URL, "FAN_KEY=" + fanKey}, r.env...)...)
	res := runBin(t, env, append([]string{"--config", cfg}, args...)...)
	assert.NotContains(t, res.stderr+res.stdout, fanKey, "no key in the output")
	return res
}

func seq(from, to int64) []int64 {
	var out []int64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// TestFanOutOneKeySeveralTargets (SQLite, JSON, DynamoDB): connections sharing one connector key each
// get every item in order with their own cursor. Going from one connection
// to two replays nothing (the new cursors start from the key's plain one); a
// target that is down fails only its connection (the other delivers
// everything) and catches up in order once it is back, nothing lost; a third
// target added later replays nothing either.
func TestFanOutOneKeySeveralTargets(t *testing.T) {
	for _, backend := range append(stateBackends, "dynamodb") {
		t.Run(backend, func(t *testing.T) {
			r := newFanRig(t)
			state := backend + ":" + filepath.Join(r.dir, "state")
			if backend == "dynamodb" {
				ddb := dynalitetest.Start(t)
				ddb.CreateTable(t, "edgepoll-fan")
				r.env, state = ddb.Env(), "dynamodb:edgepoll-fan"
			}
			r.api.Push(fanKey, ilerttest.AlertEvents(5)...) // 1..5

			// Before fan-out: one connection on the key, the plain cursor.
			res := r.run(t, r.config(t, state, "tickets"))
			require.Equal(t, 0, res.code, res.stderr)
			require.Equal(t, seq(1, 5), r.tg.ids("tickets"))

			// A second target, down: tickets goes on, down fails alone.
			r.api.Push(fanKey, ilerttest.AlertEvents(5)...) // 6..10
			cfg := r.config(t, state, "tickets", "down")
			res = r.run(t, cfg)
			require.Equal(t, 1, res.code, res.stderr)
			assert.Contains(t, res.stderr, "tickets=ok")
			assert.Contains(t, res.stderr, "down=failed")
			assert.Equal(t, seq(1, 10), r.tg.ids("tickets"), "the target that is up gets everything, nothing replayed")
			res = r.run(t, cfg) // still down: tickets has nothing new, down fails again
			require.Equal(t, 1, res.code, res.stderr)
			assert.Equal(t, seq(1, 10), r.tg.ids("tickets"))

			// Back up: down catches up in order from where the key was
			// shared (6), nothing lost, nothing before it replayed.
			r.up(t)
			r.api.Push(fanKey, ilerttest.AlertEvents(2)...) // 11..12
			res = r.run(t, cfg)
			require.Equal(t, 0, res.code, res.stderr)
			assert.Equal(t, seq(6, 12), r.down.ids("down"))
			assert.Equal(t, seq(1, 12), r.tg.ids("tickets"))

			// A third target added later starts from the key's furthest
			// cursor: it gets what is new, nothing replayed.
			r.api.Push(fanKey, ilerttest.AlertEvents(1)...) // 13
			cfg = r.config(t, state, "tickets", "down", "audit")
			res = r.run(t, cfg)
			require.Equal(t, 0, res.code, res.stderr)
			assert.Equal(t, []int64{13}, r.tg.ids("audit"))
			assert.Equal(t, seq(6, 13), r.down.ids("down"))
			assert.Equal(t, seq(1, 13), r.tg.ids("tickets"))

			// state show lists each connection with its own cursor, stored
			// under the key's hash and its name.
			res = r.run(t, cfg, "state", "show")
			require.Equal(t, 0, res.code, res.stderr)
			for _, n := range []string{"tickets", "down", "audit"} {
				assert.Contains(t, res.stdout, "connection  "+poll.CursorID(fanKey, n)+"\ncursor      13")
			}

			// A new target that should get the whole queue: its cursor is
			// set to 0 before its first run (docs/feeding.md).
			cfg = r.config(t, state, "tickets", "down", "audit", "full")
			res = r.run(t, cfg, "state", "set-cursor", "0", "--connection", "full")
			require.Equal(t, 0, res.code, res.stderr)
			res = r.run(t, cfg)
			require.Equal(t, 0, res.code, res.stderr)
			assert.Equal(t, seq(1, 13), r.tg.ids("full"))
			assert.Equal(t, []int64{13}, r.tg.ids("audit"))
		})
	}
}

// TestFanOutFreshStartOneAtATime: three targets on one key start on an
// empty state one after the other (--max-parallel 1): the later ones start
// where the key was when the run began, not where the first one got to;
// each gets every item, in order, and the polls of the pages they agree on
// are shared (the fake API counts them).
func TestFanOutFreshStartOneAtATime(t *testing.T) {
	r := newFanRig(t)
	r.api.Push(fanKey, ilerttest.AlertEvents(250)...)
	cfg := r.config(t, "sqlite:"+filepath.Join(r.dir, "state.db"), "a", "b", "c")
	res := r.run(t, cfg, "--max-parallel", "1")
	require.Equal(t, 0, res.code, res.stderr)
	for _, n := range []string{"a", "b", "c"} {
		assert.Equal(t, seq(1, 250), r.tg.ids(n), n)
	}
	assert.Len(t, r.api.Requests(), 3, "one poll per page (after-id 0, 100, 200) for the three")
}

// TestFanOutDaemonTargetDownDelaysOnlyItself: in --loop, while one target
// is down (connection refused) the other keeps delivering every item as it
// arrives, and /ready names the one that is not ready; once it is back it
// catches up in order, nothing lost, nothing twice, without a restart.
func TestFanOutDaemonTargetDownDelaysOnlyItself(t *testing.T) {
	// Mostly waits on timers: runs beside the other parallel tests.
	t.Parallel()
	r := newFanRig(t)
	r.api.Push(fanKey, ilerttest.AlertEvents(30)...)
	cfg := r.config(t, "sqlite:"+filepath.Join(r.dir, "state.db")+"\npoll-interval: 5s", "tickets", "down")
	d := startDaemonBin(t, baseEnv("ILERT_API_HOST="+r.apiSv.URL, "FAN_KEY="+fanKey), "--config", cfg)

	require.Eventually(t, func() bool { return len(r.tg.ids("tickets")) == 30 }, 20*time.Second, 20*time.Millisecond)
	r.api.Push(fanKey, ilerttest.AlertEvents(5)...) // 31..35 while down is still down
	require.Eventually(t, func() bool { return len(r.tg.ids("tickets")) == 35 }, 20*time.Second, 20*time.Millisecond,
		"the target that is up keeps delivering")
	code, body := d.get(t, "/ready")
	assert.Equal(t, 503, code)
	assert.Contains(t, body, `"name":"down","ready":false`)

	r.up(t)
	require.Eventually(t, func() bool { return len(r.down.ids("down")) >= 35 }, 60*time.Second, 50*time.Millisecond,
		"the target that was down catches up")
	d.stopGracefully(t)
	assert.Equal(t, seq(1, 35), r.down.ids("down"), "in order, nothing lost, nothing twice")
	assert.Equal(t, seq(1, 35), r.tg.ids("tickets"))
	assert.NotContains(t, d.logs.String(), fanKey)
}

// TestFanOutEachConnectionItsOwnRoute: three connections on one key with
// their own filter and transform; a transform that fails on some items
// dead-letters them under its connection only (the default dead letter,
// kept in the state store per connection), the others get them.
func TestFanOutEachConnectionItsOwnRoute(t *testing.T) {
	r := newFanRig(t)
	payloads := ilerttest.AlertEvents(12)
	r.api.Push(fanKey, payloads...)
	p := filepath.Join(r.dir, "routes.yaml")
	u := r.tg.srv.URL
	require.NoError(t, os.WriteFile(p, []byte("mode: http\nstate: sqlite:"+filepath.Join(r.dir, "state.db")+"\nconnections:\n"+
		"  - name: tickets\n    key-env: FAN_KEY\n    http-url: "+u+"/tickets\n    filter: '.eventType == \"alert-created\"'\n"+
		"  - name: dashboards\n    key-env: FAN_KEY\n    http-url: "+u+"/dashboards\n"+
		"  - name: automation\n    key-env: FAN_KEY\n    http-url: "+u+"/automation\n"+
		"    transform: 'if .eventType == \"alert-resolved\" then error(\"no resolutions\") else {k: .eventType} end'\n"), 0o644))
	res := r.run(t, p)
	require.Equal(t, 0, res.code, res.stderr)

	var created, resolved, rest []int64
	for i, pl := range payloads {
		id := int64(i + 1)
		switch {
		case strings.Contains(string(pl), `"alert-created"`):
			created = append(created, id)
			rest = append(rest, id)
		case strings.Contains(string(pl), `"alert-resolved"`):
			resolved = append(resolved, id)
		default:
			rest = append(rest, id)
		}
	}
	require.NotEmpty(t, resolved)
	assert.Equal(t, created, r.tg.ids("tickets"))
	assert.Equal(t, seq(1, 12), r.tg.ids("dashboards"))
	assert.Equal(t, rest, r.tg.ids("automation"))

	res = r.run(t, p, "dead-letter", "list", "--connection", "automation")
	require.Equal(t, 0, res.code, res.stderr)
	var listed []int64
	for _, line := range strings.Split(strings.TrimSpace(res.stdout), "\n") {
		var id int64
		var reason string
		_, err := fmt.Sscanf(line, "%d\t%s", &id, &reason)
		require.NoError(t, err, line)
		assert.Equal(t, "transform", reason)
		listed = append(listed, id)
	}
	assert.Equal(t, resolved, listed)
	for _, n := range []string{"tickets", "dashboards"} {
		res = r.run(t, p, "dead-letter", "list", "--connection", n)
		require.Equal(t, 0, res.code, res.stderr)
		assert.Empty(t, strings.TrimSpace(res.stdout), n)
	}
}

// TestFanOutLambda: the Lambda bootstrap with a --config file whose three
// connections share one key (DynamoDB state): an invocation while one
// target answers 503 fails naming it, the others delivered everything;
// the next invocation, the target back, delivers its items in order and
// the others poll nothing new.
func TestFanOutLambda(t *testing.T) {
	r := newFanRig(t)
	r.api.Push(fanKey, ilerttest.AlertEvents(150)...)
	ddb := dynalitetest.Start(t)
	ddb.CreateTable(t, "edgepoll-fan")
	rt := newFakeRuntime(t)
	cfg := r.config(t, "dynamodb:edgepoll-fan\nmax-parallel: 2", "a", "b", "c")
	r.tg.status = unavailableFor("b")
	logs := startBootstrap(t, rt, baseEnv(append([]string{"ILERT_API_HOST=" + r.apiSv.URL, "FAN_KEY=" + fanKey,
		"EDGEPOLL_CONFIG=" + cfg}, ddb.Env()...)...))

	res := rt.invoke(t, "fan-1", 60*time.Second)
	require.False(t, res.ok, "b's target failed")
	assert.Contains(t, string(res.body), "1 of 3 connections failed: b")
	assert.Equal(t, seq(1, 150), r.tg.ids("a"))
	assert.Equal(t, seq(1, 150), r.tg.ids("c"))

	r.tg.mu.Lock()
	r.tg.status = nil
	r.tg.mu.Unlock()
	res = rt.invoke(t, "fan-2", 60*time.Second)
	require.True(t, res.ok, string(res.body))
	var out runner.FleetLambdaResult
	require.NoError(t, json.Unmarshal(res.body, &out), string(res.body))
	require.Len(t, out.Connections, 3)
	assert.Equal(t, 150, out.Connections[1].Delivered)
	assert.Equal(t, 0, out.Connections[0].Polled)
	assert.Equal(t, poll.CursorID(fanKey, "b"), out.Connections[1].Connection)
	assert.Equal(t, seq(1, 150), r.tg.ids("b"), "in order, nothing lost")
	assert.Equal(t, seq(1, 150), r.tg.ids("a"), "nothing twice")
	assert.NotContains(t, logs.String()+string(res.body), fanKey)
}

// TestFanOutTargetDownFromTheStart: on an empty state, a target that is down
// at its very first run keeps its place (a cursor of its own at the oldest
// queued event): once back, the next run delivers it every item, though its
// sibling's cursor is at the end of the queue.
func TestFanOutTargetDownFromTheStart(t *testing.T) {
	r := newFanRig(t)
	r.api.Push(fanKey, ilerttest.AlertEvents(40)...)
	cfg := r.config(t, "json:"+filepath.Join(r.dir, "state.json"), "tickets", "down")
	res := r.run(t, cfg)
	require.Equal(t, 1, res.code, res.stderr)
	assert.Equal(t, seq(1, 40), r.tg.ids("tickets"))
	r.up(t)
	res = r.run(t, cfg)
	require.Equal(t, 0, res.code, res.stderr)
	assert.Equal(t, seq(1, 40), r.down.ids("down"))
	assert.Equal(t, seq(1, 40), r.tg.ids("tickets"))
}
