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
	"testing"
	"time"

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
	payloads := ilerttest.AlertEvents(drainItems)
	b.Run("baseline-plain-loop", func(b *testing.B) {
		srv := drainTarget(b)
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			for _, p := range payloads {
				req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(p))
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
			srv := drainTarget(b)
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				key := fmt.Sprintf("iec1-bench-%d", i)
				api := ilerttest.New(key)
				api.Push(key, payloads...)
				apiSrv := api.Start()
				cli := &CLI{APIURL: apiSrv.URL, Mode: "http", HTTPURL: srv.URL, HTTPMethod: "POST",
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
