package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgepoll/edgepoll/internal/testenv"
)

// Build tags of the two artifacts, as the Makefile sets them (TAGS for
// `make build`, LAMBDA_TAGS for `make build-EdgepollFunction`;
// TestMakefileTags keeps them in step).
const (
	generalTags = "lambda.norpc"
	lambdaTags  = "lambda.norpc,lambda"
)

// The end-to-end tests run the real binaries, each built once per test run
// like the release artifacts (stripped).
var (
	binMu    sync.Mutex
	binPaths = map[string]string{}
)

// edgepollBin is the general binary, built like `make build`.
func edgepollBin(t testing.TB) string { return builtBin(t, generalTags) }

// bootstrapBin is the Lambda bootstrap, built like `make
// build-EdgepollFunction` (for the host architecture).
func bootstrapBin(t testing.TB) string { return builtBin(t, lambdaTags) }

func builtBin(t testing.TB, tags string) string {
	t.Helper()
	binMu.Lock()
	defer binMu.Unlock()
	if p, ok := binPaths[tags]; ok {
		if p == "" {
			t.Fatalf("go build -tags %s failed earlier", tags)
		}
		return p
	}
	binPaths[tags] = ""
	dir, err := os.MkdirTemp("", "edgepoll-bin-")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "edgepoll")
	cmd := exec.Command("go", "build", "-trimpath", "-tags", tags, "-ldflags", "-s -w", "-o", p, ".")
	cmd.Dir = filepath.Join(testenv.RepoRoot(), "cmd", "edgepoll")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags %s: %v\n%s", tags, err, out)
	}
	binPaths[tags] = p
	return p
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
	return runBinary(t, edgepollBin(t), env, args...)
}

func runBinary(t testing.TB, bin string, env []string, args ...string) result {
	t.Helper()
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
