// Command baredrain is the baseline of edgepoll's scale benchmarks: a bare
// Go program doing what a one-shot cycle does with a backlog, with the
// standard library alone: GET a page of events after the cursor, POST
// each payload to BAREDRAIN_URL, keep the cursor in the plain file
// BAREDRAIN_CURSOR, poll again while pages are full, at most POLLS pages
// of LIMIT items (its two arguments: the cycle's bounds). No lease, no
// fsync, no retries. Built by the benchmark (testdata: not part of ./...).
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
)

func main() {
	if err := drain(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func drain() error {
	if len(os.Args) != 3 {
		return fmt.Errorf("usage: baredrain POLLS LIMIT")
	}
	polls, _ := strconv.Atoi(os.Args[1])
	limit, _ := strconv.Atoi(os.Args[2])
	cursorFile := os.Getenv("BAREDRAIN_CURSOR")
	var after int64
	if b, err := os.ReadFile(cursorFile); err == nil {
		after, _ = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	}
	for range polls {
		n, err := page(&after, limit)
		if err != nil {
			return err
		}
		if err := os.WriteFile(cursorFile, []byte(strconv.FormatInt(after, 10)), 0o600); err != nil {
			return err
		}
		if n < limit {
			break
		}
	}
	return nil
}

// page polls one page after *after, delivers it and moves *after past it.
func page(after *int64, limit int) (int, error) {
	url := fmt.Sprintf("%s/api/edge-connections/events?after-id=%d&limit=%d", os.Getenv("ILERT_API_HOST"), *after, limit)
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", os.Getenv("ILERT_EDGE_CONNECTOR_KEY"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	var p struct {
		Items []struct {
			ID      int64           `json:"id"`
			Payload json.RawMessage `json:"payload"`
		} `json:"items"`
	}
	err = json.NewDecoder(resp.Body).Decode(&p)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("poll: %s %v", resp.Status, err)
	}
	for _, it := range p.Items {
		r, err := http.Post(os.Getenv("BAREDRAIN_URL"), "application/json", bytes.NewReader(it.Payload))
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
		if r.StatusCode/100 != 2 {
			return 0, fmt.Errorf("post: %s", r.Status)
		}
		*after = it.ID
	}
	return len(p.Items), nil
}
