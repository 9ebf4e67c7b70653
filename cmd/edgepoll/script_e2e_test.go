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
