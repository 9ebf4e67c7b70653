package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
	"github.com/edgepoll/edgepoll/sinks/sinktest"
)

// Memory and time of the real binary against the size of what it polls
// (issue 19): peak RSS (VmHWM, sampled every millisecond) and wall time of
// one-shot runs draining a backlog from the fake ilert API to an HTTP
// target with SQLite state.
//
// Each iteration also drains the same backlog with testdata/baredrain (a
// bare Go program polling and posting with the standard library alone,
// the same runs of at most poll.MaxPollsPerCycle pages), runs
// testdata/bareget (the floor of a Go process doing one GET) and, when
// EDGEPOLL_BENCH_BEFORE names another build (an older commit's binary),
// drains with that build too, each taking its turn first, so the figures
// are paired in one run:
//
//   - peak-MiB: edgepoll's peak (median over iterations; max-peak-MiB the
//     maximum), bareget-MiB the floor, baredrain-MiB the bare drain's,
//     page-MiB one page of 100 items;
//   - pages-over-floor: (peak - floor) / page: what the run holds beyond a
//     bare Go process, in pages (issue 19 target: peak <= 25 MiB + 2.5
//     pages);
//   - wall-s: the wall time of all the runs draining the backlog (median),
//     baredrain-wall-s the bare drain's, wall-ratio edgepoll's / the bare
//     drain's (summed over iterations);
//   - before-MiB, ratio (peak / before-MiB) and before-wall-s with
//     EDGEPOLL_BENCH_BEFORE.

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
// bound); the peak is the highest of the runs, the wall time their sum.
func BenchmarkBacklogPeakRSS(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("items=%dk", n/1000), func(b *testing.B) { benchPeakRSS(b, n, 1<<10) })
	}
}

// drained is what draining a backlog took: per iteration, the highest
// peak RSS of the runs (MiB) and their summed wall time.
type drained struct {
	peaks []float64
	walls []time.Duration
}

func (d *drained) add(peak float64, wall time.Duration) {
	d.peaks, d.walls = append(d.peaks, peak), append(d.walls, wall)
}

func (d *drained) wall() time.Duration {
	var sum time.Duration
	for _, w := range d.walls {
		sum += w
	}
	return sum
}

func (d *drained) medianWall() float64 {
	s := make([]float64, len(d.walls))
	for i, w := range d.walls {
		s[i] = w.Seconds()
	}
	return median(s)
}

func benchPeakRSS(b *testing.B, items, size int) {
	bins := []string{benchBin(b), bareDrainBin(b)}
	if before := os.Getenv("EDGEPOLL_BENCH_BEFORE"); before != "" {
		bins = append(bins, before)
	}
	bare := bareGetBin(b)
	payloads := bigPayloads(items, size)
	target := sinktest.HTTPTarget(b)
	runs := (items + poll.MaxPollsPerCycle*poll.BatchLimit - 1) / (poll.MaxPollsPerCycle * poll.BatchLimit)
	// drain runs bin until the backlog is delivered: its highest peak, the
	// runs' summed wall time.
	drain := func(bin string) (float64, time.Duration) {
		api := ilerttest.New(e2eKey)
		api.Push(e2eKey, payloads...)
		srv := api.Start()
		defer srv.Close()
		dir := b.TempDir()
		env := baseEnv("ILERT_API_HOST="+srv.URL, "ILERT_EDGE_CONNECTOR_KEY="+e2eKey)
		args := []string{"--mode", "http", "--http-url", target.URL, "--state", "sqlite:" + filepath.Join(dir, "state.db")}
		if bin == bins[1] {
			env = append(env, "BAREDRAIN_URL="+target.URL, "BAREDRAIN_CURSOR="+filepath.Join(dir, "cursor"))
			args = []string{strconv.Itoa(poll.MaxPollsPerCycle), strconv.Itoa(poll.BatchLimit)}
		}
		var peak float64
		var wall time.Duration
		for range runs {
			d, m := runMeasured(b, bin, env, args...)
			peak, wall = max(peak, m), wall+d
		}
		if n := len(api.Requests()); n < items/poll.BatchLimit {
			b.Fatalf("%s polled %d times for %d items", filepath.Base(bin), n, items)
		}
		return peak, wall
	}
	got := make([]drained, len(bins))
	var bareRSS []float64
	for i := 0; b.Loop(); i++ {
		for j := range bins {
			k := (i + j) % len(bins) // each build goes first in turn
			got[k].add(drain(bins[k]))
		}
		api := ilerttest.New(e2eKey)
		srv := api.Start()
		_, m := runMeasured(b, bare, baseEnv("ILERT_API_HOST="+srv.URL, "ILERT_EDGE_CONNECTOR_KEY="+e2eKey))
		srv.Close()
		bareRSS = append(bareRSS, m)
	}
	reportDrained(b, got, median(bareRSS), float64(min(items, poll.BatchLimit)*size)/(1<<20))
}

// reportDrained reports edgepoll's (got[0]) figures against the bare drain
// (got[1]), the floor and, when measured, the build before (got[2]).
func reportDrained(b *testing.B, got []drained, floor, page float64) {
	peak := median(got[0].peaks)
	b.ReportMetric(peak, "peak-MiB")
	b.ReportMetric(slices.Max(got[0].peaks), "max-peak-MiB")
	b.ReportMetric(floor, "bareget-MiB")
	b.ReportMetric(median(got[1].peaks), "baredrain-MiB")
	b.ReportMetric(page, "page-MiB")
	b.ReportMetric((peak-floor)/page, "pages-over-floor")
	b.ReportMetric(got[0].medianWall(), "wall-s")
	b.ReportMetric(got[1].medianWall(), "baredrain-wall-s")
	b.ReportMetric(got[0].wall().Seconds()/got[1].wall().Seconds(), "wall-ratio")
	if len(got) == 3 {
		b.ReportMetric(median(got[2].peaks), "before-MiB")
		b.ReportMetric(peak/median(got[2].peaks), "ratio")
		b.ReportMetric(got[2].medianWall(), "before-wall-s")
	}
	b.ReportMetric(0, "ns/op")
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
