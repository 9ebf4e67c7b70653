package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgepoll/edgepoll/internal/latencyproxy"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
)

const drainItems = 1000

// drainTarget is a loopback HTTP endpoint that accepts everything.
func drainTarget(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(srv.Close)
	return srv
}

// BenchmarkDrainHTTP measures a whole cycle draining 1000 items (10 polls of
// 100) from the fake ilert API to a loopback HTTP target, cursor persisted
// after every item, for each state backend; and, in the same run, the
// baseline: a plain net/http loop posting the same 1000 bodies. Compare the
// items/s figures (BENCHMARKS.md has the ratios).
func BenchmarkDrainHTTP(b *testing.B) {
	for _, rtt := range []time.Duration{0, time.Millisecond} {
		name := "loopback"
		if rtt > 0 {
			name = "rtt-1ms"
		}
		b.Run(name, func(b *testing.B) { benchDrain(b, rtt) })
	}
}

// drainURL is the target's URL, through a latency proxy when rtt > 0.
func drainURL(b *testing.B, rtt time.Duration) string {
	srv := drainTarget(b)
	if rtt == 0 {
		return srv.URL
	}
	p, err := latencyproxy.Start(strings.TrimPrefix(srv.URL, "http://"), rtt/2)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return "http://" + p.Addr
}

func benchDrain(b *testing.B, rtt time.Duration) {
	payloads := ilerttest.AlertEvents(drainItems)
	b.Run("baseline-plain-loop", func(b *testing.B) {
		url := drainURL(b, rtt)
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			for _, p := range payloads {
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(p))
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
		b.ReportMetric(float64(b.N*drainItems)/b.Elapsed().Seconds(), "items/s")
	})
	for _, backend := range []string{"sqlite", "json"} {
		b.Run("edgepoll-"+backend, func(b *testing.B) {
			url := drainURL(b, rtt)
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				key := fmt.Sprintf("iec1-bench-%d", i)
				api := ilerttest.New(key)
				api.Push(key, payloads...)
				apiSrv := api.Start()
				cli := &CLI{APIURL: apiSrv.URL, Mode: "http", HTTPURL: url, HTTPMethod: "POST",
					HTTPTimeout: Seconds(10 * time.Second), State: backend + ":" + filepath.Join(b.TempDir(), "state")}
				a, err := build(context.Background(), cli, key, "bench", log, io.Discard)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				sum, err := a.cycle.Run(context.Background())
				b.StopTimer()
				if err != nil || sum.Delivered != drainItems {
					b.Fatalf("delivered %d: %v", sum.Delivered, err)
				}
				a.close()
				apiSrv.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(b.N*drainItems)/b.Elapsed().Seconds(), "items/s")
		})
	}
}
