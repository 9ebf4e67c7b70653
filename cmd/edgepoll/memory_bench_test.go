package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
	"github.com/edgepoll/edgepoll/sinks/sinktest"
)

// Memory of the real binary against the size of what it polls (issue 19):
// peak RSS (VmHWM, sampled every millisecond) of one-shot runs draining a
// backlog from the fake ilert API to an HTTP target with SQLite state.
//
// Each iteration also runs testdata/bareget (the floor of a Go process
// doing one GET) and, when EDGEPOLL_BENCH_BEFORE names another build (an
// older commit's binary), that build on the same backlog, so the figures
// are paired in one run:
//
//   - peak-MiB: edgepoll's peak (median over iterations; max-peak-MiB the
//     maximum), bareget-MiB the floor, page-MiB one page of 100 items;
//   - pages-over-floor: (peak - floor) / page: what the run holds beyond a
//     bare Go process, in pages (issue 19 target: peak <= 25 MiB + 2.5
//     pages);
//   - before-MiB and ratio (peak / before-MiB) with EDGEPOLL_BENCH_BEFORE.

// BenchmarkPayloadPeakRSS: 1000 items (10 polls of 100, one run) of 1, 16,
// 64 and 256 KiB, and 300 items of 256 KiB (3 pages).
func BenchmarkPayloadPeakRSS(b *testing.B) {
	for _, tc := range []struct{ items, size int }{
		{1000, 1 << 10}, {1000, 16 << 10}, {1000, 64 << 10}, {1000, 256 << 10}, {300, 256 << 10},
	} {
		b.Run(fmt.Sprintf("items=%d/payload=%dKiB", tc.items, tc.size>>10), func(b *testing.B) {
			benchPeakRSS(b, tc.items, tc.size)
		})
	}
}

// BenchmarkBacklogPeakRSS: backlogs of 1k, 10k and 100k items of 1 KiB,
// drained by consecutive one-shot runs (1000 items each, the cycle's
// bound); the peak is the highest of the runs.
func BenchmarkBacklogPeakRSS(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("items=%dk", n/1000), func(b *testing.B) { benchPeakRSS(b, n, 1<<10) })
	}
}

func benchPeakRSS(b *testing.B, items, size int) {
	bin, bare := benchBin(b), bareGetBin(b)
	before := os.Getenv("EDGEPOLL_BENCH_BEFORE")
	payloads := bigPayloads(items, size)
	target := sinktest.HTTPTarget(b)
	runs := (items + poll.MaxPollsPerCycle*poll.BatchLimit - 1) / (poll.MaxPollsPerCycle * poll.BatchLimit)
	// drain runs bin until the backlog is delivered; its highest peak.
	drain := func(bin string) float64 {
		api := ilerttest.New(e2eKey)
		api.Push(e2eKey, payloads...)
		srv := api.Start()
		defer srv.Close()
		env := baseEnv("ILERT_API_HOST="+srv.URL, "ILERT_EDGE_CONNECTOR_KEY="+e2eKey)
		state := "sqlite:" + filepath.Join(b.TempDir(), "state.db")
		var peak float64
		for range runs {
			_, m := runMeasured(b, bin, env, "--mode", "http", "--http-url", target.URL, "--state", state)
			peak = max(peak, m)
		}
		if n := len(api.Requests()); n < items/poll.BatchLimit {
			b.Fatalf("%s polled %d times for %d items", filepath.Base(bin), n, items)
		}
		return peak
	}
	var rss, bareRSS, beforeRSS []float64
	for i := 0; b.Loop(); i++ {
		if before != "" && i%2 == 1 { // alternate which build goes first
			beforeRSS = append(beforeRSS, drain(before))
		}
		rss = append(rss, drain(bin))
		if before != "" && i%2 == 0 {
			beforeRSS = append(beforeRSS, drain(before))
		}
		api := ilerttest.New(e2eKey)
		srv := api.Start()
		_, m := runMeasured(b, bare, baseEnv("ILERT_API_HOST="+srv.URL, "ILERT_EDGE_CONNECTOR_KEY="+e2eKey))
		srv.Close()
		bareRSS = append(bareRSS, m)
	}
	page := float64(min(items, poll.BatchLimit)*size) / (1 << 20)
	peak, floor := median(rss), median(bareRSS)
	b.ReportMetric(peak, "peak-MiB")
	b.ReportMetric(slices.Max(rss), "max-peak-MiB")
	b.ReportMetric(floor, "bareget-MiB")
	b.ReportMetric(page, "page-MiB")
	b.ReportMetric((peak-floor)/page, "pages-over-floor")
	if before != "" {
		b.ReportMetric(median(beforeRSS), "before-MiB")
		b.ReportMetric(peak/median(beforeRSS), "ratio")
	}
	b.ReportMetric(0, "ns/op")
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
