package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/internal/testenv"
)

// A script never outlives edgepoll: killed with SIGKILL, or exiting at once
// on a second SIGTERM, edgepoll leaves neither the script nor the child it
// started running (else the item in flight would be finished after the next
// run delivered the following ones: effects out of order).
func TestScriptDiesWithEdgepoll(t *testing.T) {
	for name, stop := range map[string]func(p *os.Process){
		"SIGKILL": func(p *os.Process) { _ = p.Signal(syscall.SIGKILL) },
		"second SIGTERM": func(p *os.Process) {
			_ = p.Signal(syscall.SIGTERM)
			time.Sleep(100 * time.Millisecond)
			_ = p.Signal(syscall.SIGTERM)
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, 3)
			pids := filepath.Join(e.dir, "pids")
			script := filepath.Join(e.dir, "handle.sh")
			// The script starts a child, records both pids, and waits.
			require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\nsleep 1000 &\necho $$ $! > "+pids+".tmp\nmv "+pids+".tmp "+pids+"\nwait\n"), 0o755))
			cmd := exec.Command(edgepollBin(t), "--mode", "script", "--script", script, "--script-timeout", "10m", "--state", e.state("json"))
			cmd.Env = e.vars()
			require.NoError(t, cmd.Start())
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			var script1, child int
			require.Eventually(t, func() bool {
				b, err := os.ReadFile(pids)
				if err != nil {
					return false
				}
				f := strings.Fields(string(b))
				script1, _ = strconv.Atoi(f[0])
				child, _ = strconv.Atoi(f[1])
				return true
			}, 30*time.Second, 10*time.Millisecond)
			t.Cleanup(func() { // never leave them behind, whatever happens
				_ = syscall.Kill(script1, syscall.SIGKILL)
				_ = syscall.Kill(child, syscall.SIGKILL)
			})
			require.True(t, testenv.Alive(script1) && testenv.Alive(child))
			stop(cmd.Process)
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatal("edgepoll did not exit")
			}
			require.Eventually(t, func() bool { return !testenv.Alive(script1) }, 30*time.Second, 10*time.Millisecond, "script %d outlived edgepoll", script1)
			require.Eventually(t, func() bool { return !testenv.Alive(child) }, 30*time.Second, 10*time.Millisecond, "the script's child %d outlived edgepoll", child)
		})
	}
}

// A script's child that leaves the script's process group and session
// (setsid) does not outlive edgepoll either: after a run that ends
// normally (the script exits 0 and leaves it behind), and after edgepoll
// is killed with SIGKILL while the script waits for it.
func TestSetsidGrandchildDoesNotOutliveEdgepoll(t *testing.T) {
	for name, tc := range map[string]struct {
		rest string // after the grandchild started
		kill bool
	}{
		"normal exit": {rest: "exit 0\n"},
		"SIGKILL":     {rest: "wait\n", kill: true},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, 1)
			pidFile := filepath.Join(e.dir, "pid")
			script := filepath.Join(e.dir, "handle.sh")
			require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\n"+
				"setsid sh -c 'echo $$ > "+pidFile+".tmp; mv "+pidFile+".tmp "+pidFile+"; exec sleep 300' &\n"+
				"while [ ! -s "+pidFile+" ]; do sleep 0.01; done\n"+tc.rest), 0o755))
			cmd := exec.Command(edgepollBin(t), "--mode", "script", "--script", script, "--script-timeout", "10m", "--state", e.state("json"))
			cmd.Env = e.vars()
			require.NoError(t, cmd.Start())
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var pid int
			require.Eventually(t, func() bool {
				b, err := os.ReadFile(pidFile)
				if err != nil {
					return false
				}
				pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
				return pid > 0
			}, 30*time.Second, 10*time.Millisecond)
			t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
			if tc.kill {
				require.True(t, testenv.Alive(pid))
				_ = cmd.Process.Signal(syscall.SIGKILL)
			}
			select {
			case err := <-done:
				if !tc.kill {
					require.NoError(t, err, "edgepoll exit")
				}
			case <-time.After(60 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatal("edgepoll did not exit")
			}
			require.Eventually(t, func() bool { return !testenv.Alive(pid) }, 30*time.Second, 10*time.Millisecond,
				"the setsid grandchild %d outlived edgepoll", pid)
		})
	}
}

// No AWS credential variable of edgepoll's environment reaches a script
// unless --script-env names it.
func TestScriptGetsNoAWSCredentials(t *testing.T) {
	e := newEnv(t, 1)
	out := filepath.Join(e.dir, "env")
	script := filepath.Join(e.dir, "handle.sh")
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\nenv > "+out+"\n"), 0o755))
	vars := e.vars("AWS_ACCESS_KEY_ID=AKIAE2EEXAMPLE", "AWS_SECRET_ACCESS_KEY=e2e-secret-access-key",
		"AWS_SESSION_TOKEN=e2e-session-token", "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:1/creds", "AWS_REGION=eu-west-1")
	r := runBin(t, vars, "--mode", "script", "--script", script, "--state", e.state("json"))
	require.Equal(t, 0, r.code, r.stderr)
	env, err := os.ReadFile(out)
	require.NoError(t, err)
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AKIAE2EEXAMPLE", "AWS_SECRET_ACCESS_KEY", "e2e-secret-access-key", "AWS_SESSION_TOKEN", "e2e-session-token", "AWS_CONTAINER_CREDENTIALS_FULL_URI"} {
		assert.NotContains(t, string(env), v)
	}
	assert.Contains(t, string(env), "AWS_REGION=eu-west-1\n")

	e.api.Push(e2eKey, []byte(`{"id":"2"}`))
	r = runBin(t, vars, "--mode", "script", "--script", script, "--state", e.state("json"), "--script-env", "AWS_ACCESS_KEY_ID")
	require.Equal(t, 0, r.code, r.stderr)
	env, err = os.ReadFile(out)
	require.NoError(t, err)
	assert.Contains(t, string(env), "AWS_ACCESS_KEY_ID=AKIAE2EEXAMPLE\n")
	assert.NotContains(t, string(env), "e2e-secret-access-key")

	r = runBin(t, vars, "--mode", "script", "--script", script, "--state", e.state("json"), "--script-env", "AWS_REGION")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "--script-env")
}
