package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/posener/complete"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/willabides/kongplete"
	"go.yaml.in/yaml/v3"

	"github.com/edgepoll/edgepoll/internal/cliflags"
	"github.com/edgepoll/edgepoll/internal/opscmd"
	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
	"github.com/edgepoll/edgepoll/sinks"
	"github.com/edgepoll/edgepoll/state"
	"github.com/edgepoll/edgepoll/state/jsonfile"
)

// runInProcess runs edgepoll's main logic with args and env (t.Setenv).
func runInProcess(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// stubBackend registers, for the test only, a remote backend with a scheme
// no cmd code names ("redis:NAME"), kept in a JSON file per NAME under a
// temporary directory; it counts the stores it opened.
func stubBackend(t *testing.T) *atomic.Int32 {
	t.Helper()
	dir := t.TempDir()
	var opened atomic.Int32
	saved := stores
	t.Cleanup(func() { stores = saved })
	stores = append([]state.Backend{{
		Scheme: "redis", Form: "redis:NAME",
		Validate: func(string) error { return nil },
		Open: func(ctx context.Context, name string, log *slog.Logger) (poll.Store, error) {
			opened.Add(1)
			return jsonfile.Open(ctx, filepath.Join(dir, name+".json"), log)
		},
	}}, saved...)
	return &opened
}

// A backend registered in one line is handled everywhere without cmd code
// naming it: state set-cursor, state show (which once printed "cursor none"
// for any scheme it did not know, without opening the store), a cycle, and
// the Lambda check (a remote store serves Lambda).
func TestRegisteredBackendHandledWithoutNamingIt(t *testing.T) {
	opened := stubBackend(t)
	api := ilerttest.New("stub-key")
	srv := api.Start()
	defer srv.Close()
	api.Push("stub-key", ilerttest.AlertEvents(3)...)
	env := map[string]string{"ILERT_EDGE_CONNECTOR_KEY": "stub-key", "ILERT_API_HOST": srv.URL,
		"EDGEPOLL_STATE": "redis:edge"}

	code, _, stderr := runInProcess(t, env, "state", "set-cursor", "1")
	require.Equal(t, exitOK, code, stderr)
	code, stdout, stderr := runInProcess(t, env, "state", "show", "--output", "json")
	require.Equal(t, exitOK, code, stderr)
	var shown opscmd.StateJSON
	require.NoError(t, json.Unmarshal([]byte(stdout), &shown), stdout)
	require.NotNil(t, shown.Cursor, "state show read the store: %s", stdout)
	assert.Equal(t, int64(1), *shown.Cursor)

	code, stdout, stderr = runInProcess(t, env, "--mode", "stdout")
	require.Equal(t, exitOK, code, stderr)
	assert.Equal(t, 2, strings.Count(stdout, "\n"), "the items after the cursor were delivered: %s", stdout)
	code, stdout, _ = runInProcess(t, env, "state", "show")
	require.Equal(t, exitOK, code)
	assert.Contains(t, stdout, "cursor      3")
	assert.GreaterOrEqual(t, opened.Load(), int32(4))

	assert.Empty(t, notForLambda(&CLI{State: "redis:edge"}, "EDGEPOLL_STATE", "EDGEPOLL_DEAD_LETTER"), "a remote store serves Lambda")
	msg := notForLambda(&CLI{State: "json:/tmp/x.json"}, "EDGEPOLL_STATE", "EDGEPOLL_DEAD_LETTER")
	assert.Contains(t, msg, "EDGEPOLL_STATE")
	assert.Contains(t, msg, "redis:NAME", "the forms usable in Lambda come from the registry")
}

// pagerTarget is a target registered by a test only: --mode pager
// --pager-url URL, delivering to the run's stdout.
type pagerTarget struct {
	URL string `name:"pager-url" help:"pager: where to page." group:"Pager"`
}

func (p *pagerTarget) Validate(sinks.Shared) error {
	if p.URL == "" {
		return sinks.Problem("pager-url", "is required for pager")
	}
	return nil
}

func (p *pagerTarget) Open(_ context.Context, _ sinks.Shared, env sinks.Env) (poll.Sink, error) {
	return poll.OneByOne(pagerDeliverer{url: p.URL, w: env.Stdout}), nil
}

type pagerDeliverer struct {
	url string
	w   io.Writer
}

func (d pagerDeliverer) Deliver(_ context.Context, ev poll.Event) error {
	_, err := fmt.Fprintf(d.w, "paged %s %d\n", d.url, ev.ID)
	return err
}

func (pagerDeliverer) Close() error { return nil }

func stubTarget(t *testing.T) {
	t.Helper()
	saved := targets
	t.Cleanup(func() { targets = saved })
	targets = append(saved[:len(saved):len(saved)], sinks.Registration{Mode: "pager", New: func() sinks.Target { return &pagerTarget{} }})
}

// A target registered in one line is a --mode everywhere: the help text's
// list of modes and its flags, validation naming its flag, a cycle, the
// --config file's keys, and shell completion.
func TestRegisteredTargetHandledWithoutNamingIt(t *testing.T) {
	stubTarget(t)
	api := ilerttest.New("stub-key")
	srv := api.Start()
	defer srv.Close()
	api.Push("stub-key", ilerttest.AlertEvents(2)...)
	dir := t.TempDir()
	env := map[string]string{"ILERT_EDGE_CONNECTOR_KEY": "stub-key", "ILERT_API_HOST": srv.URL,
		"EDGEPOLL_STATE": "json:" + filepath.Join(dir, "s.json")}

	code, stdout, _ := runInProcess(t, env, "--help")
	require.Equal(t, exitOK, code)
	assert.Contains(t, stdout, "http, kafka, mqtt, script, stdout or pager")
	assert.Contains(t, stdout, "--pager-url")

	code, _, stderr := runInProcess(t, env, "--mode", "pager")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "--pager-url: is required for pager")

	code, stdout, stderr = runInProcess(t, env, "--mode", "pager", "--pager-url", "https://pager.example/hook")
	require.Equal(t, exitOK, code, stderr)
	assert.Equal(t, 2, strings.Count(stdout, "paged https://pager.example/hook"), stdout)

	api.Push("stub-key", ilerttest.AlertEvents(1)...)
	cfg := filepath.Join(dir, "edgepoll.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("mode: pager\nconnections:\n  - name: one\n    key-env: ILERT_EDGE_CONNECTOR_KEY\n    pager-url: https://pager.example/one\n"), 0o600))
	code, stdout, stderr = runInProcess(t, env, "--config", cfg)
	require.Equal(t, exitOK, code, stderr)
	assert.Contains(t, stdout, "paged https://pager.example/one")

	k, err := newParser(newCLI(), io.Discard, io.Discard)
	require.NoError(t, err)
	cmd, err := kongplete.Command(k, append(completionOptions(), cliflags.ValuePredictors(k)...)...)
	require.NoError(t, err)
	require.Contains(t, cmd.GlobalFlags, "--mode")
	assert.Contains(t, cmd.GlobalFlags["--mode"].Predict(complete.Args{}), "pager")
	assert.Contains(t, cmd.GlobalFlags["--state"].Predict(complete.Args{}), "json:")
}

// The SAM template offers as its Mode exactly the registered targets that
// serve Lambda (plus config, several connections from a file).
func TestTemplateModesFollowTheRegistry(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "template.yaml"))
	require.NoError(t, err)
	var tpl struct {
		Parameters struct {
			Mode struct {
				AllowedValues []string `yaml:"AllowedValues"`
			} `yaml:"Mode"`
		} `yaml:"Parameters"`
	}
	require.NoError(t, yaml.Unmarshal(b, &tpl))
	want := []string{"config"}
	for _, r := range targets {
		if r.Lambda {
			want = append(want, r.Mode)
		}
	}
	assert.ElementsMatch(t, want, tpl.Parameters.Mode.AllowedValues, "template.yaml Parameters.Mode.AllowedValues")
}
