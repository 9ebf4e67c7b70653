package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/sinks/sinktest"
)

const signingSecret = "whsec-E2e-Sign1ng-Secret"

// signatureChecker verifies X-ilert-Signature the way docs/feeding.md tells
// a receiver to (HMAC-SHA256 of "<t>.<body>", constant-time compare, t
// within 5 minutes) and refuses a request that fails with 401.
type signatureChecker struct {
	mu      sync.Mutex
	checked int
	bad     []string
}

func (c *signatureChecker) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if _, err := sinktest.VerifySignature(signingSecret, r.Header.Get("X-ilert-Signature"), body, time.Now()); err != nil {
			c.mu.Lock()
			c.bad = append(c.bad, err.Error())
			c.mu.Unlock()
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		c.mu.Lock()
		c.checked++
		c.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

// counts returns the verified count and the failures, read under the lock
// (the handler of a request the binary gave up on may still be running).
func (c *signatureChecker) counts() (int, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.checked, append([]string(nil), c.bad...)
}

// Every HTTP delivery is signed, and so is a dead-letter replay; the
// receiver verifies each signature; the secret appears in no log line,
// even at the most verbose level; with --config it comes from the
// variable that http-signing-secret-env names.
func TestSignedDeliveriesVerifiedByTheReceiver(t *testing.T) {
	e := newEnv(t, 12)
	chk := &signatureChecker{}
	tg := newTargetWrapped(t, chk.wrap)
	refused := true
	tg.setStatus(func(id int64) int {
		if id == 4 && refused {
			return http.StatusUnprocessableEntity
		}
		return http.StatusOK
	})
	dl := "file:" + filepath.Join(e.dir, "dead.jsonl")
	args := []string{"--mode", "http", "--http-url", tg.srv.URL, "--state", e.state("sqlite"), "--dead-letter", dl, "-v", "-v",
		"--transform", "{kind: .eventType, alert: .id}"}
	vars := e.vars("EDGEPOLL_HTTP_SIGNING_SECRET=" + signingSecret)
	r := runBin(t, vars, args...)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Len(t, tg.got(), 11)
	checked, bad := chk.counts()
	assert.Empty(t, bad)
	assert.Equal(t, 12, checked, "every request (the refused one too) signed and verified; the transformed body is what is signed")
	assert.NotContains(t, r.stderr, signingSecret)

	tg.mu.Lock()
	refused = false
	tg.mu.Unlock()
	r = runBin(t, vars, append([]string{"dead-letter", "replay"}, args...)...)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, tg.got(), int64(4))
	checked, _ = chk.counts()
	assert.Equal(t, 13, checked, "the replay is signed too")
	assert.NotContains(t, r.stderr, signingSecret)

	// Without the secret the receiver refuses (the check can fail).
	e.api.Push(e2eKey, []byte(`{"eventType":"alert-created","id":"9"}`))
	r = runBin(t, e.vars(), "--mode", "http", "--http-url", tg.srv.URL, "--state", e.state("sqlite"), "--skip-limit", "0")
	require.Equal(t, 0, r.code, r.stderr)
	_, bad = chk.counts()
	assert.Len(t, bad, 1)

	// --config: http-signing-secret-env names the variable.
	cfg := filepath.Join(e.dir, "edgepoll.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`state: %s
connections:
  - name: hooks
    key-env: HOOK_KEY
    mode: http
    http-url: %s
    http-signing-secret-env: HOOK_SECRET
`, e.state("json"), tg.srv.URL)), 0o600))
	r = runBin(t, baseEnv("ILERT_API_HOST="+e.apiSv.URL, "HOOK_KEY="+e2eKey, "HOOK_SECRET="+signingSecret), "--config", cfg, "-v", "-v")
	require.Equal(t, 0, r.code, r.stderr)
	checked, _ = chk.counts()
	assert.Equal(t, 13+13, checked, "all 13 items again (its own state), each signed")
	assert.NotContains(t, r.stderr, signingSecret)

	// Literally in the file it is refused, naming the key.
	require.NoError(t, os.WriteFile(cfg, []byte("connections:\n  - name: hooks\n    key-env: HOOK_KEY\n    mode: http\n    http-url: "+tg.srv.URL+"\n    http-signing-secret: "+signingSecret+"\n"), 0o600))
	r = runBin(t, baseEnv("ILERT_API_HOST="+e.apiSv.URL, "HOOK_KEY="+e2eKey), "--config", cfg)
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "http-signing-secret-env")
	assert.NotContains(t, r.stderr, signingSecret)
}

// A 429 with Retry-After: --loop tries the item again no sooner than the
// target asked (longer than the poll interval here), /ready and the log
// say so; a one-shot run logs it. Timing is checked as a lower bound only.
func TestRetryAfterDelaysTheNextTry(t *testing.T) {
	// Mostly waits on timers: runs beside the other parallel tests.
	t.Parallel()
	const retryAfter = 9 * time.Second // the poll interval is 5s
	e := newEnv(t, 3)
	var mu sync.Mutex
	var tries []time.Time
	tg := newTargetWrapped(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter.Seconds()))) // read on a 429/503 only
			next.ServeHTTP(w, r)
		})
	})
	tg.setStatus(func(id int64) int {
		if id != 2 {
			return http.StatusOK
		}
		mu.Lock()
		defer mu.Unlock()
		tries = append(tries, time.Now())
		if len(tries) == 1 {
			return http.StatusTooManyRequests
		}
		return http.StatusOK
	})
	d := startDaemonBin(t, e.vars(), "--mode", "http", "--http-url", tg.srv.URL, "--state", e.state("sqlite"), "--poll-interval", "5")
	// /ready also shows "delivering: ..." (polling true) while the cycle is
	// under way, before the 429 comes back: wait for the deferred try.
	body := d.waitNotReady(t, func(b map[string]any) bool {
		msg, _ := b["error"].(string)
		return b["polling"] == true && strings.Contains(msg, "retry after")
	})
	assert.Contains(t, body["error"], "retry after 9s", "/ready says when the next try is")
	require.Eventually(t, func() bool { return len(tg.got()) == 3 }, 40*time.Second, 50*time.Millisecond, d.logs.String())
	mu.Lock()
	require.Len(t, tries, 2)
	gap := tries[1].Sub(tries[0])
	mu.Unlock()
	assert.GreaterOrEqual(t, gap, retryAfter, "not tried again before the target's Retry-After")
	assert.Equal(t, []int64{1, 2, 3}, tg.got())
	d.stopGracefully(t)
	assert.Contains(t, d.logs.String(), "Retry-After")
	assert.Contains(t, d.logs.String(), "retry_in=9s")

	// One-shot: the run fails (exit 1) and logs the Retry-After.
	e.api.Push(e2eKey, []byte(`{"eventType":"alert-created","id":"77"}`))
	mu.Lock()
	tries = tries[:0]
	mu.Unlock()
	tg.setStatus(func(int64) int { return http.StatusServiceUnavailable })
	r := runBin(t, e.vars(), "--mode", "http", "--http-url", tg.srv.URL, "--state", e.state("sqlite"))
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Contains(t, r.stderr, "retry_after=9s")
}
