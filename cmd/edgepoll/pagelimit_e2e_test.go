package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bigPayloads returns n alert payloads of size bytes each.
func bigPayloads(n, size int) []json.RawMessage {
	const head = `{"eventType":"alert-created","details":""}`
	out := make([]json.RawMessage, n)
	for i := range out {
		out[i] = json.RawMessage(`{"eventType":"alert-created","details":"` + strings.Repeat("x", size-len(head)) + `"}`)
	}
	return out
}

// A poll answer over the 32 MiB response limit (100 items of 700 KiB) is
// asked again with a smaller limit, so the queue keeps moving: one run
// delivers all 60 items, in order. An item that alone passes the limit
// fails the run (exit 1) naming the id it follows, every run, and nothing
// after it is delivered.
func TestAnswerOverTheResponseLimitShrinksThePage(t *testing.T) {
	e := newEnv(t, 0)
	payloads := bigPayloads(60, 700<<10)
	e.api.Push(e2eKey, payloads...)
	tg := newTarget(t)
	args := []string{"--mode", "http", "--http-url", tg.srv.URL, "--state", e.state("sqlite")}

	r := runBin(t, e.vars(), args...)
	require.Equal(t, 0, r.code, r.stderr)
	checkAtLeastOnceInOrder(t, tg.got(), 60, 0)
	tg.mu.Lock()
	assert.Equal(t, string(payloads[59]), tg.bodies[60], "payloads delivered unchanged")
	tg.mu.Unlock()
	var limits []string
	for _, q := range e.api.Requests() {
		limits = append(limits, q.Query["limit"])
	}
	// 100 items do not fit; 46 did before the limit: ask for 46, twice.
	assert.Equal(t, []string{"100", "46", "46"}, limits)

	e.api.Push(e2eKey, bigPayloads(1, 33<<20)...) // id 61: alone over the limit
	e.api.Push(e2eKey, bigPayloads(1, 1<<10)...)  // id 62 waits behind it
	for range 2 {
		r = runBin(t, e.vars(), args...)
		assert.Equal(t, 1, r.code, r.stderr)
		assert.Contains(t, r.stderr, "the edge item after id 60 alone is larger than the 33554432-byte response limit")
		assert.Len(t, tg.got(), 60, "nothing past the item that cannot be fetched")
	}
}
