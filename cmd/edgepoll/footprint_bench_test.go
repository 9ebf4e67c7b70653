package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgepoll/edgepoll/internal/testenv"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
	"github.com/edgepoll/edgepoll/sinks/sinktest"
)

// Footprint benchmarks of the real binaries (issue 12): start-up of an empty
// cycle against a bare Go GET, peak RSS of a 5 KiB drain, binary sizes.

// benchBin is the binary the footprint benchmarks run: the general build,
// or the one named by EDGEPOLL_BENCH_BIN (to measure another build, such
// as an older commit's, with the same harness).
func benchBin(b *testing.B) string {
	if p := os.Getenv("EDGEPOLL_BENCH_BIN"); p != "" {
		return p
	}
	return edgepollBin(b)
}

// bareGetBin builds testdata/bareget, the start-up baseline.
func bareGetBin(b *testing.B) string { return testdataBin(b, "bareget") }

// bareDrainBin builds testdata/baredrain, the scale benchmarks' baseline.
func bareDrainBin(b *testing.B) string { return testdataBin(b, "baredrain") }

func testdataBin(b *testing.B, name string) string {
	p := filepath.Join(b.TempDir(), name)
	cmd := exec.Command("go", "build", "-trimpath", "-o", p, "./testdata/"+name)
	cmd.Dir = filepath.Join(testenv.RepoRoot(), "cmd", "edgepoll")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build %s: %v\n%s", name, err, out)
	}
	return p
}

// runMeasured runs bin to completion and returns its wall time (process
// start to exit) and peak RSS in MiB. The peak is the kernel's high-water
// mark VmHWM of the process's own memory, sampled every millisecond until
// it exits: the rusage of a child cannot be used, as Go starts it with
// vfork and the kernel carries the parent's (this benchmark's) high-water
// mark over the exec into its maxrss.
func runMeasured(b *testing.B, bin string, env []string, args ...string) (time.Duration, float64) {
	return runChild(b, true, bin, env, args...)
}

// runTimed runs bin to completion and returns its wall time, without
// sampling its memory (which would compete for the CPU).
func runTimed(b *testing.B, bin string, env []string, args ...string) time.Duration {
	d, _ := runChild(b, false, bin, env, args...)
	return d
}

func runChild(b *testing.B, sample bool, bin string, env []string, args ...string) (time.Duration, float64) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	var hwm float64
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		if sample {
			if kib := vmHWM(status); kib > hwm {
				hwm = kib
			}
		}
		select {
		case err := <-done:
			d := time.Since(start)
			if err != nil {
				b.Fatalf("%s: %v\n%s", filepath.Base(bin), err, stderr.String())
			}
			return d, hwm / 1024
		case <-tick.C:
		}
	}
}

// vmHWM reads the VmHWM line (KiB) of a /proc/PID/status file; 0 when the
// process is gone or has no memory any more.
func vmHWM(path string) float64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kib float64
			_, _ = fmt.Sscanf(strings.TrimSpace(v), "%f", &kib)
			return kib
		}
	}
	return 0
}

// BenchmarkStartup: an empty one-shot cycle of the real binary (process
// start, configuration, lease and cursor from SQLite, one poll answering
// no items, exit) against testdata/bareget doing the same GET; each
// iteration runs both, in turns (which goes first alternates), and the
// ratio is of the summed times. With EDGEPOLL_BENCH_BEFORE naming another
// build (an older commit's binary), that build runs in the same turns:
// before-ms and before-ratio, paired with the others. Issue 12 and 19.3
// target: ratio <= 1.5.
func BenchmarkStartup(b *testing.B) {
	bins := []string{bareGetBin(b), benchBin(b)}
	if before := os.Getenv("EDGEPOLL_BENCH_BEFORE"); before != "" {
		bins = append(bins, before)
	}
	api := ilerttest.New(e2eKey)
	srv := api.Start()
	defer srv.Close()
	target := sinktest.HTTPTarget(b)
	env := baseEnv("ILERT_API_HOST="+srv.URL, "ILERT_EDGE_CONNECTOR_KEY="+e2eKey)
	state := "sqlite:" + filepath.Join(b.TempDir(), "state.db")
	args := []string{"--mode", "http", "--http-url", target.URL, "--state", state}
	runTimed(b, bins[1], env, args...) // the state file exists from now on
	took := make([]time.Duration, len(bins))
	for i := 0; b.Loop(); i++ {
		for j := range bins {
			k := (i + j) % len(bins) // each binary goes first in turn
			if k == 0 {
				took[k] += runTimed(b, bins[k], env)
			} else {
				took[k] += runTimed(b, bins[k], env, args...)
			}
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N) / 1000 }
	b.ReportMetric(ms(took[1]), "edgepoll-ms")
	b.ReportMetric(ms(took[0]), "bareget-ms")
	b.ReportMetric(took[1].Seconds()/took[0].Seconds(), "ratio")
	if len(bins) == 3 {
		b.ReportMetric(ms(took[2]), "before-ms")
		b.ReportMetric(took[2].Seconds()/took[0].Seconds(), "before-ratio")
	}
	b.ReportMetric(0, "ns/op")
}

// payloads5K are n alert events padded to 5 KiB each.
func payloads5K(n int) []json.RawMessage {
	out := ilerttest.AlertEvents(n)
	for i, p := range out {
		pad := 5*1024 - len(p) - len(`,"details":""`)
		out[i] = json.RawMessage(fmt.Sprintf(`%s,"details":"%s"}`, p[:len(p)-1], strings.Repeat("x", max(pad, 0))))
	}
	return out
}

// BenchmarkDrainPeakRSS: peak RSS of the real binary draining 1000 items of
// 5 KiB (10 polls of 100) to an HTTP target with SQLite state, one process
// per iteration; the bare GET program's peak RSS (a Go process's floor) in
// the same run. Reports the median and the maximum. Issue 12 target: <= 30 MiB.
func BenchmarkDrainPeakRSS(b *testing.B) {
	bin, bare := benchBin(b), bareGetBin(b)
	payloads := payloads5K(1000)
	if len(payloads[0]) != 5*1024 {
		b.Fatalf("payload is %d bytes", len(payloads[0]))
	}
	target := sinktest.HTTPTarget(b)
	var rss, bareRSS []float64
	for i := 0; b.Loop(); i++ {
		api := ilerttest.New(e2eKey)
		api.Push(e2eKey, payloads...)
		srv := api.Start()
		env := baseEnv("ILERT_API_HOST="+srv.URL, "ILERT_EDGE_CONNECTOR_KEY="+e2eKey)
		state := "sqlite:" + filepath.Join(b.TempDir(), "state.db")
		_, m := runMeasured(b, bin, env, "--mode", "http", "--http-url", target.URL, "--state", state)
		rss = append(rss, m)
		_, m = runMeasured(b, bare, env)
		bareRSS = append(bareRSS, m)
		srv.Close()
	}
	slices.Sort(rss)
	slices.Sort(bareRSS)
	b.ReportMetric(rss[len(rss)/2], "peak-MiB")
	b.ReportMetric(rss[len(rss)-1], "max-peak-MiB")
	b.ReportMetric(bareRSS[len(bareRSS)/2], "bareget-MiB")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkBinarySize builds the release artifacts as the Makefile does
// (stripped: -s -w) and reports their sizes in MB (10^6 bytes): the
// general binary for this machine (`make build`) and the Lambda bootstrap
// for arm64 (`make build-EdgepollFunction`). Issue 12 targets: <= 25 MB and
// <= 20 MB.
func BenchmarkBinarySize(b *testing.B) {
	dir := b.TempDir()
	size := func(name, goarch, tags string) float64 {
		p := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-trimpath", "-tags", tags, "-ldflags", "-s -w", "-o", p, ".")
		cmd.Dir = filepath.Join(testenv.RepoRoot(), "cmd", "edgepoll")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("go build %s: %v\n%s", name, err, out)
		}
		st, err := os.Stat(p)
		if err != nil {
			b.Fatal(err)
		}
		return float64(st.Size()) / 1e6
	}
	var general, lambda float64
	for b.Loop() {
		general = size("edgepoll", runtime.GOARCH, generalTags)
		lambda = size("bootstrap", "arm64", lambdaTags)
	}
	b.ReportMetric(general, "general-MB")
	b.ReportMetric(lambda, "lambda-arm64-MB")
	b.ReportMetric(0, "ns/op")
}
