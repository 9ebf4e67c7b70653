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

	"github.com/edgepoll/edgepoll/internal/testenv"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
	"github.com/edgepoll/edgepoll/sinks/sinktest"
)

// Connections cost what is in flight (issue 19.2): the memory of one
// `--config` run follows --max-parallel, not the number of connections.
// With EDGEPOLL_BENCH_BEFORE naming another build (an older commit's
// binary), each iteration runs both on the same work, alternating which
// goes first, so the figures are paired in one run.

// connFleet writes a --config file of n connections (one HTTP target, one
// SQLite file, --max-parallel 4, extra top-level lines) and returns its
// path, the fake API with items queued per connection, and the environment.
func connFleet(b *testing.B, n, items int, extra string) (string, *ilerttest.API, []string) {
	dir := b.TempDir()
	target := sinktest.HTTPTarget(b)
	api := ilerttest.New()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "mode: http\nhttp-url: %s\nstate: sqlite:%s\nmax-parallel: 4\n%sconnections:\n",
		target.URL, filepath.Join(dir, "fleet.db"), extra)
	var env []string
	payloads := ilerttest.AlertEvents(items)
	for i := range n {
		key := fmt.Sprintf("iec1-bench-conns-%04d", i)
		api.Push(key, payloads...) // registers the key even with no items
		fmt.Fprintf(&cfg, "  - name: c%04d\n    key-env: KEY_%04d\n", i, i)
		env = append(env, fmt.Sprintf("KEY_%04d=%s", i, key))
	}
	path := filepath.Join(dir, "edgepoll.yaml")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	return path, api, env
}

// BenchmarkConnectionsPeakRSS: one one-shot `--config` run of 10, 100 and
// 1000 connections of one item each, --max-parallel 4: its wall time and
// peak RSS (VmHWM sampled). Issue 19.2 target: 1000 connections <= 60 MiB.
func BenchmarkConnectionsPeakRSS(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			bin, before := benchBin(b), os.Getenv("EDGEPOLL_BENCH_BEFORE")
			var rss, beforeRSS []float64
			var wall, beforeWall time.Duration
			one := func(bin string) (time.Duration, float64) {
				cfg, api, env := connFleet(b, n, 1, "")
				srv := api.Start()
				defer srv.Close()
				d, m := runMeasured(b, bin, baseEnv(append(env, "ILERT_API_HOST="+srv.URL)...), "--config", cfg)
				if got := len(api.Requests()); got < n {
					b.Fatalf("%s: %d polls for %d connections", filepath.Base(bin), got, n)
				}
				return d, m
			}
			for i := 0; b.Loop(); i++ {
				if before != "" && i%2 == 1 {
					d, m := one(before)
					beforeWall, beforeRSS = beforeWall+d, append(beforeRSS, m)
				}
				d, m := one(bin)
				wall, rss = wall+d, append(rss, m)
				if before != "" && i%2 == 0 {
					d, m := one(before)
					beforeWall, beforeRSS = beforeWall+d, append(beforeRSS, m)
				}
			}
			b.ReportMetric(median(rss), "peak-MiB")
			b.ReportMetric(wall.Seconds()/float64(b.N), "wall-s")
			if before != "" {
				b.ReportMetric(median(beforeRSS), "before-MiB")
				b.ReportMetric(beforeWall.Seconds()/float64(b.N), "before-s")
				b.ReportMetric(median(rss)/median(beforeRSS), "ratio")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkConnectionsIdleLoop: `--loop` with 10 and 1000 connections and
// empty queues, once every connection has polled at least twice: resident
// memory per connection (the slope between the two, KiB) and the open file
// descriptors of the 1000-connection daemon; without endpoints, and with
// -p (each connection's Prometheus series). Issue 19.2 target: <= 40 KiB
// per connection, no file descriptor per idle connection.
func BenchmarkConnectionsIdleLoop(b *testing.B) {
	for _, port := range []bool{false, true} {
		b.Run(fmt.Sprintf("port=%v", port), func(b *testing.B) { benchIdleLoop(b, port) })
	}
}

func benchIdleLoop(b *testing.B, port bool) {
	bin, before := benchBin(b), os.Getenv("EDGEPOLL_BENCH_BEFORE")
	measure := func(bin string, n int) (rssKiB float64, fds int) {
		extra := "poll-interval: 5s\n"
		if port {
			extra += fmt.Sprintf("port: %d\nlisten-addr: 127.0.0.1\n", testenv.FreePort(b))
		}
		cfg, api, env := connFleet(b, n, 0, extra)
		srv := api.Start()
		defer srv.Close()
		cmd := exec.Command(bin, "--config", cfg, "--loop")
		cmd.Env = baseEnv(append(env, "ILERT_API_HOST="+srv.URL)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		deadline := time.Now().Add(time.Minute)
		for len(api.Requests()) < 2*n {
			if time.Now().After(deadline) {
				b.Fatalf("%s: %d polls of %d connections in a minute\n%s", filepath.Base(bin), len(api.Requests()), n, stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(time.Second) // past the cycles in flight
		rssKiB = procStatus(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid), "VmRSS:")
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", cmd.Process.Pid))
		_ = cmd.Process.Signal(syscall.SIGTERM)
		return rssKiB, len(ents)
	}
	var perConn, fds, beforePerConn, beforeFDs []float64
	run := func(bin string, kib, fd *[]float64) {
		small, _ := measure(bin, 10)
		large, n := measure(bin, 1000)
		*kib = append(*kib, (large-small)/990)
		*fd = append(*fd, float64(n))
	}
	for i := 0; b.Loop(); i++ {
		if before != "" && i%2 == 1 {
			run(before, &beforePerConn, &beforeFDs)
		}
		run(bin, &perConn, &fds)
		if before != "" && i%2 == 0 {
			run(before, &beforePerConn, &beforeFDs)
		}
	}
	b.ReportMetric(median(perConn), "KiB/conn")
	b.ReportMetric(median(fds), "fds")
	if before != "" {
		b.ReportMetric(median(beforePerConn), "before-KiB/conn")
		b.ReportMetric(median(beforeFDs), "before-fds")
	}
	b.ReportMetric(0, "ns/op")
}

// procStatus reads one KiB line (VmRSS:, VmHWM:) of a /proc/PID/status
// file; 0 when the process is gone.
func procStatus(path, field string) float64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			var kib float64
			_, _ = fmt.Sscanf(strings.TrimSpace(v), "%f", &kib)
			return kib
		}
	}
	return 0
}
