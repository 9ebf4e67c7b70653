package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgepoll/edgepoll/internal/testenv"
)

// The end-to-end tests run the real binary, built once per test run.
var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func edgepollBin(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "edgepoll-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "edgepoll")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Dir = filepath.Join(testenv.RepoRoot(), "cmd", "edgepoll")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// result of one run of the binary.
type result struct {
	code           int
	stdout, stderr string
}

// baseEnv is a minimal environment: no EDGEPOLL_* or ILERT_* from the
// developer's shell leaks into a test.
func baseEnv(extra ...string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	return append(env, extra...)
}

func runBin(t testing.TB, env []string, args ...string) result {
	t.Helper()
	bin := edgepollBin(t) // built before the clock starts: a first build on a loaded machine is slow
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("running edgepoll: %v", err)
		}
		code = ee.ExitCode()
	}
	r := result{code: code, stdout: out.String(), stderr: errb.String()}
	if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic:") {
		t.Fatalf("edgepoll panicked:\n%s", r.stderr)
	}
	return r
}
