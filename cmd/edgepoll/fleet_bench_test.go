package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgepoll/edgepoll/poll/ilerttest"
	"github.com/edgepoll/edgepoll/sinks/sinktest"
)

// BenchmarkFleet (issue 13): 100 connections x 100 items to an HTTP target
// with SQLite state, delivered by one `--config` run, against the same work
// done by 100 one-shot processes in sequence (one per connection, the way
// a deployment per connection runs). Each iteration does both, in
// alternating order, on fresh queues and state. Reports the ratio
// (processes / config run, target >= 5), both times and the config run's
// peak RSS (VmHWM sampled, target <= 64 MiB).
func BenchmarkFleet(b *testing.B) {
	const conns, items = 100, 100
	bin := benchBin(b)
	target := sinktest.HTTPTarget(b)
	payloads := ilerttest.AlertEvents(items)
	key := func(i int) string { return fmt.Sprintf("iec1-bench-fleet-%03d", i) }
	var tFleet, tSeq time.Duration
	var peak float64
	for it := 0; b.Loop(); it++ {
		dir := b.TempDir()
		api := ilerttest.New()
		var cfg strings.Builder
		fmt.Fprintf(&cfg, "mode: http\nhttp-url: %s\nstate: sqlite:%s\nmax-parallel: %s\nconnections:\n", target.URL, filepath.Join(dir, "fleet.db"), fleetBenchParallel())
		env := []string{}
		for i := 0; i < conns; i++ {
			api.Push(key(i), payloads...)
			fmt.Fprintf(&cfg, "  - name: c%03d\n    key-env: KEY_%03d\n", i, i)
			env = append(env, fmt.Sprintf("KEY_%03d=%s", i, key(i)))
		}
		srv := api.Start()
		cfgPath := filepath.Join(dir, "edgepoll.yaml")
		if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o644); err != nil {
			b.Fatal(err)
		}
		env = baseEnv(append(env, "ILERT_API_HOST="+srv.URL)...)
		fleet := func() {
			d, m := runMeasured(b, bin, env, "--config", cfgPath)
			tFleet += d
			peak = max(peak, m)
		}
		// The same connections again, one process each, on their own state.
		seq := func() {
			state := "sqlite:" + filepath.Join(dir, "seq.db")
			for i := 0; i < conns; i++ {
				tSeq += runTimed(b, bin, baseEnv("ILERT_API_HOST="+srv.URL, "ILERT_EDGE_CONNECTOR_KEY="+key(i)),
					"--mode", "http", "--http-url", target.URL, "--state", state)
			}
		}
		if it%2 == 0 {
			fleet()
			seq()
		} else {
			seq()
			fleet()
		}
		srv.Close()
		delivered := 0
		for _, r := range api.Requests() {
			if r.Path == "/api/edge-connections/events" {
				delivered++
			}
		}
		if delivered < 2*conns {
			b.Fatalf("only %d polls", delivered)
		}
	}
	b.ReportMetric(tSeq.Seconds()/tFleet.Seconds(), "ratio")
	b.ReportMetric(tFleet.Seconds()/float64(b.N), "config-s")
	b.ReportMetric(tSeq.Seconds()/float64(b.N), "processes-s")
	b.ReportMetric(peak, "peak-MiB")
	b.ReportMetric(0, "ns/op")
}

// fleetBenchParallel is the config run's --max-parallel: the default (4),
// or EDGEPOLL_BENCH_PARALLEL.
func fleetBenchParallel() string {
	if p := os.Getenv("EDGEPOLL_BENCH_PARALLEL"); p != "" {
		return p
	}
	return "4"
}
