package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgepoll/edgepoll/poll/ilerttest"
	"github.com/edgepoll/edgepoll/sinks/sinktest"
)

// BenchmarkFanOutPolls (issue 18.2): what fan-out costs in polls. N
// connections of one --config file share one connector key (N HTTP
// targets, SQLite state, --max-parallel N); the fake API counts the polls
// that reach it:
//   - drain: one one-shot run over a backlog of 1000 items;
//   - empty: the next one-shot run, nothing new;
//   - loop: a --loop daemon (poll-interval 5s) for 15 s with nothing new,
//     polls per second.
//
// With EDGEPOLL_BENCH_BEFORE naming another build (one without shared
// polls), the same figures for it, on the same work.
func BenchmarkFanOutPolls(b *testing.B) {
	bin, before := benchBin(b), os.Getenv("EDGEPOLL_BENCH_BEFORE")
	target := sinktest.HTTPTarget(b)
	for _, n := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("targets=%d", n), func(b *testing.B) {
			var got, was [3]float64
			for b.Loop() {
				got = fanOutPolls(b, bin, target.URL, n)
				if before != "" {
					was = fanOutPolls(b, before, target.URL, n)
				}
			}
			b.ReportMetric(got[0], "drain-polls")
			b.ReportMetric(got[1], "empty-polls")
			b.ReportMetric(got[2], "loop-polls/s")
			if before != "" {
				b.ReportMetric(was[0], "before-drain-polls")
				b.ReportMetric(was[1], "before-empty-polls")
				b.ReportMetric(was[2], "before-loop-polls/s")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkFanOutCatchUpPolls (issue 18.2): 4 connections on one key, one
// of whose targets refuses connections during a one-shot run over 1000
// items (the others deliver everything) and is back for the next run: the
// polls of each run at the fake API. With EDGEPOLL_BENCH_BEFORE, the same
// for that build.
func BenchmarkFanOutCatchUpPolls(b *testing.B) {
	bin, before := benchBin(b), os.Getenv("EDGEPOLL_BENCH_BEFORE")
	target := sinktest.HTTPTarget(b)
	var got, was [2]float64
	for b.Loop() {
		got = catchUpPolls(b, bin, target.URL)
		if before != "" {
			was = catchUpPolls(b, before, target.URL)
		}
	}
	b.ReportMetric(got[0], "down-run-polls")
	b.ReportMetric(got[1], "catch-up-run-polls")
	if before != "" {
		b.ReportMetric(was[0], "before-down-run-polls")
		b.ReportMetric(was[1], "before-catch-up-run-polls")
	}
	b.ReportMetric(0, "ns/op")
}

func catchUpPolls(b *testing.B, bin, url string) [2]float64 {
	const key = "iec1-bench-fanout-key"
	dir := b.TempDir()
	api := ilerttest.New(key)
	api.Push(key, ilerttest.AlertEvents(1000)...)
	srv := api.Start()
	defer srv.Close()
	env := baseEnv("ILERT_API_HOST="+srv.URL, "FAN_KEY="+key)
	var out [2]float64
	for i, last := range []string{"http://127.0.0.1:1/t3", url + "/t3"} {
		var cfg strings.Builder
		fmt.Fprintf(&cfg, "mode: http\nstate: sqlite:%s\nmax-parallel: 4\nconnections:\n", filepath.Join(dir, "s.db"))
		for j := 0; j < 3; j++ {
			fmt.Fprintf(&cfg, "  - name: t%d\n    key-env: FAN_KEY\n    http-url: %s/t%d\n", j, url, j)
		}
		fmt.Fprintf(&cfg, "  - name: t3\n    key-env: FAN_KEY\n    http-url: %s\n", last)
		p := filepath.Join(dir, "edgepoll.yaml")
		if err := os.WriteFile(p, []byte(cfg.String()), 0o644); err != nil {
			b.Fatal(err)
		}
		from := len(api.Requests())
		cmd := exec.Command(bin, "--config", p)
		cmd.Env = env
		_ = cmd.Run() // exit 1 while t3 is down
		out[i] = float64(len(api.Requests()) - from)
	}
	return out
}

// fanOutPolls measures bin's polls for n targets on one key: the drain of
// 1000 items, the empty run after it, the idle daemon's polls per second.
func fanOutPolls(b *testing.B, bin, url string, n int) [3]float64 {
	const key = "iec1-bench-fanout-key"
	dir := b.TempDir()
	api := ilerttest.New(key)
	api.Push(key, ilerttest.AlertEvents(1000)...)
	srv := api.Start()
	defer srv.Close()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "mode: http\nstate: sqlite:%s\nmax-parallel: %d\npoll-interval: 5s\nconnections:\n", filepath.Join(dir, "s.db"), n)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&cfg, "  - name: t%d\n    key-env: FAN_KEY\n    http-url: %s/t%d\n", i, url, i)
	}
	p := filepath.Join(dir, "edgepoll.yaml")
	if err := os.WriteFile(p, []byte(cfg.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	env := baseEnv("ILERT_API_HOST="+srv.URL, "FAN_KEY="+key)
	var out [3]float64
	for i := 0; i < 2; i++ {
		before := len(api.Requests())
		runTimed(b, bin, env, "--config", p)
		out[i] = float64(len(api.Requests()) - before)
	}
	cmd := exec.Command(bin, "--config", p, "--loop")
	cmd.Env = env
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	time.Sleep(time.Second) // started
	from := len(api.Requests())
	time.Sleep(15 * time.Second)
	out[2] = float64(len(api.Requests())-from) / 15
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	return out
}
