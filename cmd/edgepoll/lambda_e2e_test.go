package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/internal/dynalitetest"
	"github.com/edgepoll/edgepoll/internal/runner"
	"github.com/edgepoll/edgepoll/internal/testenv"
	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
	"github.com/edgepoll/edgepoll/state/deadletter"
	"github.com/edgepoll/edgepoll/state/dynamo"
)

// fakeRuntime is a small Lambda Runtime API: the test queues invocations,
// the bootstrap fetches them from /next and posts a response or an error.
type fakeRuntime struct {
	srv     *httptest.Server
	next    chan invocation
	results chan invResult
	initErr chan string
	waits   atomic.Int32 // requests for the next invocation (the first: init is done)
}

type invocation struct {
	id       string
	deadline time.Time
}

type invResult struct {
	id   string
	ok   bool
	body []byte
}

func newFakeRuntime(t *testing.T) *fakeRuntime {
	rt := &fakeRuntime{next: make(chan invocation, 16), results: make(chan invResult, 16), initErr: make(chan string, 1)}
	const base = "/2018-06-01/runtime/"
	rt.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		p := strings.TrimPrefix(r.URL.Path, base)
		switch {
		case p == "invocation/next" && r.Method == http.MethodGet:
			rt.waits.Add(1)
			select {
			case inv := <-rt.next:
				h := w.Header()
				h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
				h.Set("Lambda-Runtime-Deadline-Ms", fmt.Sprint(inv.deadline.UnixMilli()))
				h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:edgepoll")
				h.Set("Lambda-Runtime-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
				_, _ = w.Write([]byte(`{"version":"0","detail-type":"Scheduled Event","source":"aws.scheduler"}`))
			case <-r.Context().Done():
			}
		case strings.HasPrefix(p, "invocation/") && strings.HasSuffix(p, "/response"):
			rt.results <- invResult{id: strings.TrimSuffix(strings.TrimPrefix(p, "invocation/"), "/response"), ok: true, body: body}
			w.WriteHeader(http.StatusAccepted)
		case strings.HasPrefix(p, "invocation/") && strings.HasSuffix(p, "/error"):
			rt.results <- invResult{id: strings.TrimSuffix(strings.TrimPrefix(p, "invocation/"), "/error"), body: body}
			w.WriteHeader(http.StatusAccepted)
		case p == "init/error":
			rt.initErr <- string(body)
			w.WriteHeader(http.StatusAccepted)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(rt.srv.Close)
	return rt
}

func (rt *fakeRuntime) invoke(t *testing.T, id string, timeout time.Duration) invResult {
	t.Helper()
	rt.next <- invocation{id: id, deadline: time.Now().Add(timeout)}
	select {
	case res := <-rt.results:
		require.Equal(t, id, res.id)
		return res
	case <-time.After(timeout + 10*time.Second):
		t.Fatalf("invocation %s: no result", id)
	}
	return invResult{}
}

// fakeSSM speaks the SSM JSON protocol for GetParameter, at the wire level.
type fakeSSM struct {
	srv   *httptest.Server
	calls atomic.Int32
}

func newFakeSSM(t *testing.T, name, value string) *fakeSSM {
	f := &fakeSSM{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Name           string
			WithDecryption bool
		}
		_ = json.NewDecoder(r.Body).Decode(&in)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if r.Header.Get("X-Amz-Target") != "AmazonSSM.GetParameter" || in.Name != name || !in.WithDecryption {
			w.WriteHeader(400)
			_, _ = w.Write([]byte(`{"__type":"ParameterNotFound","message":"not found"}`))
			return
		}
		f.calls.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]any{"Parameter": map[string]any{"Name": name, "Type": "SecureString", "Value": value, "Version": 1}})
	}))
	t.Cleanup(f.srv.Close)
	return f
}

type lambdaRig struct {
	env   *env
	tg    *target
	rt    *fakeRuntime
	ssm   *fakeSSM
	ddb   *dynalitetest.Server
	proc  *exec.Cmd
	logs  *testenv.SyncBuffer
	table string
	vars  []string
}

// lambdaVars are the variables Lambda sets for a function served by rt.
func lambdaVars(rt *fakeRuntime) []string {
	return []string{"AWS_LAMBDA_RUNTIME_API=" + strings.TrimPrefix(rt.srv.URL, "http://"),
		"AWS_LAMBDA_FUNCTION_NAME=edgepoll", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128", "AWS_LAMBDA_FUNCTION_VERSION=$LATEST"}
}

// startBootstrap starts the bootstrap served by rt with env (plus
// lambdaVars); its output goes to the returned buffer, and it is killed at
// the test's end.
func startBootstrap(t *testing.T, rt *fakeRuntime, env []string) *testenv.SyncBuffer {
	logs := &testenv.SyncBuffer{}
	proc := exec.Command(bootstrapBin(t))
	proc.Env = append(env, lambdaVars(rt)...)
	proc.Stdout, proc.Stderr = logs, logs
	require.NoError(t, proc.Start())
	t.Cleanup(func() { _ = proc.Process.Kill(); _ = proc.Wait() })
	return logs
}

// start starts the bootstrap (a fresh execution environment).
func (r *lambdaRig) start(t *testing.T) {
	r.proc = exec.Command(bootstrapBin(t))
	r.proc.Env = r.vars
	r.proc.Stdout, r.proc.Stderr = r.logs, r.logs
	require.NoError(t, r.proc.Start())
}

func newLambdaRig(t *testing.T, items int, extraEnv ...string) *lambdaRig {
	r := &lambdaRig{env: newEnv(t, items), tg: newTarget(t), rt: newFakeRuntime(t), ddb: dynalitetest.Start(t), table: "edgepoll-state", logs: &testenv.SyncBuffer{}}
	r.ddb.CreateTable(t, r.table)
	r.ssm = newFakeSSM(t, "/edgepoll/connector-key", e2eKey)
	vars := append(baseEnv(append(lambdaVars(r.rt),
		"AWS_LAMBDA_LOG_FORMAT=JSON",
		"ILERT_API_HOST="+r.env.apiSv.URL,
		"EDGEPOLL_CONNECTOR_KEY_PARAMETER=/edgepoll/connector-key",
		"AWS_ENDPOINT_URL_SSM="+r.ssm.srv.URL,
		"EDGEPOLL_MODE=http", "EDGEPOLL_HTTP_URL="+r.tg.srv.URL+"/hook",
		"EDGEPOLL_STATE=dynamodb:"+r.table)...,
	), r.ddb.Env()...)
	r.vars = append(vars, extraEnv...)
	r.start(t)
	t.Cleanup(func() {
		_ = r.proc.Process.Kill()
		_ = r.proc.Wait()
		assert.NotContains(t, r.logs.String(), e2eKey, "the key never appears in output")
		assert.NotContains(t, r.logs.String(), "panic")
	})
	return r
}

func summaryOf(t *testing.T, res invResult) runner.LambdaResult {
	t.Helper()
	require.True(t, res.ok, "invocation failed: %s", res.body)
	var s runner.LambdaResult
	require.NoError(t, json.Unmarshal(res.body, &s), string(res.body))
	return s
}

func TestLambdaInvocationsDrainQueue(t *testing.T) {
	r := newLambdaRig(t, 1150)
	s1 := summaryOf(t, r.rt.invoke(t, "req-1", 60*time.Second))
	assert.Equal(t, 10, s1.Polls)
	assert.Equal(t, 1000, s1.Delivered)
	assert.Equal(t, int64(1000), s1.Cursor)
	assert.NotEmpty(t, s1.Connection)
	s2 := summaryOf(t, r.rt.invoke(t, "req-2", 60*time.Second))
	assert.Equal(t, 150, s2.Delivered)
	s3 := summaryOf(t, r.rt.invoke(t, "req-3", 60*time.Second))
	assert.Equal(t, 0, s3.Polled)
	checkAtLeastOnceInOrder(t, r.tg.got(), 1150, 0)
	assert.Equal(t, int32(1), r.ssm.calls.Load(), "key fetched once per cold start")
	assert.Contains(t, r.logs.String(), `"request_id":"req-2"`, "JSON logs with the request id")
}

func TestLambdaShortDeadlineStopsEarlyAndPersists(t *testing.T) {
	r := newLambdaRig(t, 300)
	r.tg.setDelay(20 * time.Millisecond)
	// 7s remaining: soft margin 5s, so deliveries stop after about 2s.
	start := time.Now()
	res := r.rt.invoke(t, "short-1", 7*time.Second)
	took := time.Since(start)
	s := summaryOf(t, res)
	assert.True(t, s.Stopped, "stopped early")
	assert.Less(t, took, 7*time.Second, "answered before the deadline")
	assert.Greater(t, s.Delivered, 0)
	assert.Less(t, s.Delivered, 300)
	n := len(r.tg.got())
	assert.InDelta(t, s.Delivered, n, 1)
	r.tg.setDelay(0)
	s2 := summaryOf(t, r.rt.invoke(t, "short-2", 60*time.Second))
	assert.False(t, s2.Stopped)
	checkAtLeastOnceInOrder(t, r.tg.got(), 300, 1)
}

func TestLambdaFailedCycleIsInvocationError(t *testing.T) {
	r := newLambdaRig(t, 10)
	r.tg.setStatus(answer(http.StatusServiceUnavailable, 4))
	res := r.rt.invoke(t, "fail-1", 30*time.Second)
	require.False(t, res.ok)
	var e struct{ ErrorMessage, ErrorType string }
	require.NoError(t, json.Unmarshal(res.body, &e), string(res.body))
	assert.Contains(t, e.ErrorMessage, "http_503")
	assert.Equal(t, []int64{1, 2, 3}, r.tg.got())
	// aws-lambda-go logs the failure with the standard log package: it goes
	// through the JSON logger like every other line.
	require.Eventually(t, func() bool { return strings.Contains(r.logs.String(), "errorMessage") }, 10*time.Second, 10*time.Millisecond)
	for _, line := range strings.Split(strings.TrimSpace(r.logs.String()), "\n") {
		assert.True(t, json.Valid([]byte(line)), "a log line that is not JSON: %q", line)
	}

	r.tg.setStatus(nil)
	s := summaryOf(t, r.rt.invoke(t, "fail-2", 30*time.Second))
	assert.Equal(t, 7, s.Delivered)
	checkAtLeastOnceInOrder(t, r.tg.got(), 10, 0)
}

func TestLambdaLeaseHeldIsNotAnError(t *testing.T) {
	r := newLambdaRig(t, 5)
	// A one-shot run elsewhere holds the lease right now: simulate it with
	// the same binary outside Lambda, against the same table, blocked on a
	// slow target.
	r.tg.setDelay(300 * time.Millisecond)
	other := exec.Command(edgepollBin(t), "--mode", "http", "--http-url", r.tg.srv.URL, "--state", "dynamodb:"+r.table)
	other.Env = append(r.env.vars(), r.ddb.Env()...)
	require.NoError(t, other.Start())
	defer func() { _ = other.Wait() }()
	require.Eventually(t, func() bool { return len(r.tg.got()) >= 1 }, 20*time.Second, 10*time.Millisecond)
	s := summaryOf(t, r.rt.invoke(t, "held-1", 30*time.Second))
	assert.True(t, s.LeaseHeld)
	assert.Equal(t, 0, s.Polls)
}

// Local state inside Lambda is refused at init, reported to the Runtime
// API: by the Lambda bootstrap when it validates the configuration (it has
// no local backends), and by the general binary when it starts serving
// Lambda.
func TestLambdaRefusesLocalState(t *testing.T) {
	for name, bin := range map[string]func(testing.TB) string{"bootstrap": bootstrapBin, "general": edgepollBin} {
		t.Run(name, func(t *testing.T) {
			rt := newFakeRuntime(t)
			cmd := exec.Command(bin(t))
			cmd.Env = baseEnv("AWS_LAMBDA_RUNTIME_API="+strings.TrimPrefix(rt.srv.URL, "http://"),
				"ILERT_EDGE_CONNECTOR_KEY="+e2eKey, "EDGEPOLL_MODE=stdout", "EDGEPOLL_STATE=sqlite:/tmp/x.db")
			out, err := cmd.CombinedOutput()
			require.Error(t, err, "init failure exits non-zero")
			assert.Contains(t, string(out), "EDGEPOLL_STATE")
			select {
			case body := <-rt.initErr:
				assert.Contains(t, body, "EDGEPOLL_STATE")
				assert.Contains(t, body, "dynamodb:TABLE")
			case <-time.After(5 * time.Second):
				t.Fatal("no init error reported to the runtime API")
			}
			assert.NotContains(t, string(out), e2eKey)
		})
	}
}

// The Lambda bootstrap leaves SQLite and the JSON file out: outside Lambda
// too, local state is a usage error naming the flag as it was set.
func TestLambdaBuildHasNoLocalState(t *testing.T) {
	e := newEnv(t, 1)
	r := runBinary(t, bootstrapBin(t), e.vars(), "--mode", "stdout", "--state", "sqlite:"+t.TempDir()+"/s.db")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "--state: sqlite: this is the Lambda bootstrap")
	assert.Empty(t, r.stdout)
	r = runBinary(t, bootstrapBin(t), append(e.vars(), "EDGEPOLL_STATE=json:"+t.TempDir()+"/s.json"), "--mode", "stdout")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "EDGEPOLL_STATE: json: this is the Lambda bootstrap")
	assert.Empty(t, e.api.Requests(), "nothing polled")
}

// The tests build the binaries with the Makefile's tags, and the container
// image builds the general one alike.
func TestMakefileTags(t *testing.T) {
	mk, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "Makefile"))
	require.NoError(t, err)
	assert.Regexp(t, `(?m)^TAGS\s*:=\s*`+regexp.QuoteMeta(generalTags)+`$`, string(mk))
	assert.Regexp(t, `(?m)^LAMBDA_TAGS\s*:=\s*`+regexp.QuoteMeta(lambdaTags)+`$`, string(mk))
	img := regexp.MustCompile(`(?m)^image:.*\n\t(.*)$`).FindStringSubmatch(string(mk))
	require.NotNil(t, img, "the Makefile has an image target")
	assert.Contains(t, img[1], "$(GO) build -trimpath -tags '$(TAGS)' ", "the image's binary is the general build")
}

func TestLambdaHonoursLogLevel(t *testing.T) {
	r := newLambdaRig(t, 3, "AWS_LAMBDA_LOG_LEVEL=ERROR")
	summaryOf(t, r.rt.invoke(t, "quiet-1", 30*time.Second))
	assert.NotContains(t, r.logs.String(), `"level":"INFO"`, "INFO lines suppressed at ERROR")
	r.tg.setStatus(func(int64) int { return http.StatusServiceUnavailable })
	r.env.api.Push(e2eKey, []byte(`{"id":"9"}`))
	res := r.rt.invoke(t, "quiet-2", 30*time.Second)
	require.False(t, res.ok)
	// stderr reaches the buffer through exec's copying goroutine, which may
	// trail the invocation response by a moment.
	assert.Eventually(t, func() bool { return strings.Contains(r.logs.String(), `"level":"ERROR"`) },
		5*time.Second, 10*time.Millisecond, "an ERROR line is logged: %s", r.logs.String())
}

// A short function timeout: the margins shrink so that a 4 s invocation
// still delivers (the old fixed 5 s soft margin ate all of it and reported
// success with nothing done), a 12 s one too, and no invocation ever
// reports success without progress.
func TestLambdaShortTimeoutsMakeProgress(t *testing.T) {
	for _, timeout := range []time.Duration{4 * time.Second, 12 * time.Second} {
		t.Run(timeout.String(), func(t *testing.T) {
			// A cycle handles at most 10 polls x 100 items; at 20 ms an
			// item those 1000 need 20 s, more than either budget, so every
			// successful invocation stops at its soft deadline however
			// fast the machine is (at 5 ms a quiet machine finished the
			// cycle inside a 12 s invocation).
			r := newLambdaRig(t, 2000)
			r.tg.setDelay(20 * time.Millisecond)
			delivered := 0
			for i := 0; i < 3 && delivered == 0; i++ {
				res := r.rt.invoke(t, fmt.Sprintf("short-%d", i), timeout)
				if !res.ok {
					t.Logf("invocation %d failed: %s", i, res.body)
					assert.Contains(t, string(res.body), "deadline", "a failure names the deadline")
					continue
				}
				s := summaryOf(t, res)
				assert.Greater(t, s.Delivered, 0, "success only with progress: %s", res.body)
				assert.True(t, s.Stopped, "2000 items do not fit: stopped at the soft deadline")
				delivered += s.Delivered
			}
			assert.Greater(t, delivered, 0, "a %s invocation delivers", timeout)
			checkAtLeastOnceInOrder(t, r.tg.got()[:delivered], delivered, 0)
		})
	}
}

// Too short to do anything: the invocation fails naming the time it had;
// and an invocation whose poll outlives its budget fails too (never a
// success that did nothing).
func TestLambdaTooShortIsAnError(t *testing.T) {
	r := newLambdaRig(t, 5)
	res := r.rt.invoke(t, "tiny-1", 2*time.Second)
	require.False(t, res.ok, "a 2s invocation is refused: %s", res.body)
	var e struct{ ErrorMessage, ErrorType string }
	require.NoError(t, json.Unmarshal(res.body, &e), string(res.body))
	assert.Contains(t, e.ErrorMessage, "left before its deadline")
	assert.Contains(t, e.ErrorMessage, "raise the function timeout")
	assert.Empty(t, r.tg.got())

	r.env.api.Fail(ilerttest.Fault{Delay: 6 * time.Second})
	res = r.rt.invoke(t, "slow-api", 4*time.Second)
	require.False(t, res.ok, "nothing could be polled: not a success: %s", res.body)
	assert.Contains(t, string(res.body), "deadline")

	s := summaryOf(t, r.rt.invoke(t, "ok", 30*time.Second))
	assert.Equal(t, 5, s.Delivered)
	assert.Equal(t, 0, s.ConsecutiveFailures, "reset by the success")
	assert.NotEmpty(t, s.LastSuccess)
}

// The failure streak and the last success are kept in the state store:
// the summary reports them across invocations.
func TestLambdaSummaryCarriesStreak(t *testing.T) {
	r := newLambdaRig(t, 3)
	r.tg.setStatus(func(int64) int { return http.StatusServiceUnavailable })
	for i := 0; i < 2; i++ {
		res := r.rt.invoke(t, fmt.Sprintf("fail-%d", i), 30*time.Second)
		require.False(t, res.ok)
	}
	r.tg.setStatus(nil)
	s := summaryOf(t, r.rt.invoke(t, "ok-1", 30*time.Second))
	assert.Equal(t, 0, s.ConsecutiveFailures)
	assert.NotEmpty(t, s.LastSuccess)
	assert.NotEmpty(t, s.LastDelivery)
	assert.Contains(t, r.logs.String(), `"consecutive_failures":2`, "the second failure's log line counts both")
}

// Lambda keeps its dead letter in DynamoDB (no file lasts there): the
// skipped item is recorded there before the cursor passes it; a file: dead
// letter is refused at init.
func TestLambdaDeadLetterInDynamoDB(t *testing.T) {
	r := newLambdaRig(t, 4, "EDGEPOLL_DEAD_LETTER=dynamodb:edgepoll-state")
	r.tg.setStatus(answer(http.StatusUnprocessableEntity, 2))
	s := summaryOf(t, r.rt.invoke(t, "dl-1", 30*time.Second))
	assert.Equal(t, 3, s.Delivered)
	assert.Equal(t, 1, s.Skipped)
	dl, err := deadletter.OpenDynamo(context.Background(), "edgepoll-state", r.ddb.StoreClient())
	require.NoError(t, err)
	recs, err := dl.List(context.Background(), s.Connection)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.Equal(t, int64(2), recs[0].ID)
	assert.Equal(t, 422, recs[0].Status)

	rt := newFakeRuntime(t)
	cmd := exec.Command(bootstrapBin(t))
	cmd.Env = baseEnv("AWS_LAMBDA_RUNTIME_API="+strings.TrimPrefix(rt.srv.URL, "http://"),
		"ILERT_EDGE_CONNECTOR_KEY="+e2eKey, "EDGEPOLL_MODE=stdout", "EDGEPOLL_STATE=dynamodb:t-1",
		"EDGEPOLL_DEAD_LETTER=file:/tmp/dead.jsonl")
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "init failure exits non-zero")
	assert.Contains(t, string(out), "EDGEPOLL_DEAD_LETTER")
}

// Lambda ends a timed-out or out-of-memory invocation with SIGKILL: its
// DynamoDB lease is neither released nor renewed. The next invocations (a
// fresh bootstrap) answer lease_held with the stored cursor and last
// delivery (not 0 and null), then fail naming the holder once it missed
// its renewals (the failure alarm sees the stall), and delivery resumes
// when the short lease expires (seconds, not the old 2 minutes).
func TestLambdaKilledInvocationDoesNotHideStall(t *testing.T) {
	// Mostly waits on timers: runs beside the other parallel tests.
	t.Parallel()
	r := newLambdaRig(t, 20)
	first := summaryOf(t, r.rt.invoke(t, "warm-1", 30*time.Second))
	require.Equal(t, 20, first.Delivered)
	payloads := make([]json.RawMessage, 300)
	for i := range payloads {
		payloads[i] = json.RawMessage(`{"n":1}`)
	}
	r.env.api.Push(e2eKey, payloads...)
	r.tg.setDelay(50 * time.Millisecond)
	r.rt.next <- invocation{id: "killed-1", deadline: time.Now().Add(60 * time.Second)}
	require.Eventually(t, func() bool { return len(r.tg.got()) >= 40 }, 30*time.Second, 5*time.Millisecond)
	require.NoError(t, r.proc.Process.Kill())
	_ = r.proc.Wait()
	killed := time.Now()
	r.tg.setDelay(0)
	r.start(t)

	store, err := dynamo.Open(context.Background(), r.table, dynamo.Options{Client: r.ddb.StoreClient()}, nil)
	require.NoError(t, err)
	var heldOK, stalled, resumed int
	for i := 0; resumed == 0 && i < 60; i++ {
		res := r.rt.invoke(t, fmt.Sprintf("after-%d", i), 30*time.Second)
		if !res.ok {
			assert.Contains(t, string(res.body), "lease held by killed-1, not renewed since")
			stalled++
		} else if s := summaryOf(t, res); s.LeaseHeld {
			info, err := store.Inspect(context.Background(), poll.ConnectionID(e2eKey))
			require.NoError(t, err)
			assert.Equal(t, info.Cursor, s.Cursor, "the stored cursor, not 0")
			assert.Greater(t, s.Cursor, int64(20))
			assert.NotNil(t, s.LastDelivery, "the stored last delivery, not null")
			heldOK++
		} else {
			assert.Greater(t, s.Delivered, 0)
			resumed = i
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("lease held %d, stalled %d, resumed %s after the kill", heldOK, stalled, time.Since(killed).Round(100*time.Millisecond))
	assert.Greater(t, stalled, 0, "a killed holder's lease fails invocations before it expires")
	require.Greater(t, resumed, 0, "delivery resumes once the lease expires")
	assert.Less(t, time.Since(killed), 40*time.Second, "seconds, not the 2-minute lease")
	for i := 0; i < 5 && len(r.tg.got()) < 320; i++ {
		summaryOf(t, r.rt.invoke(t, fmt.Sprintf("drain-%d", i), 30*time.Second))
	}
	checkAtLeastOnceInOrder(t, r.tg.got(), 320, 3)
}

// A Lambda HA invocation is one-shot: it acknowledges its last batch with
// a final poll (limit=1, last-processed-id), so the next invocation in a
// fresh execution environment (a new, random instance) delivers nothing
// the first delivered (16.3).
func TestLambdaHAInvocationAcknowledges(t *testing.T) {
	r := newLambdaRig(t, 5, "EDGEPOLL_CLUSTER_ID=prod")
	r.env.api.SetLeaderTTL(0) // the next environment's new instance takes over at once
	s := summaryOf(t, r.rt.invoke(t, "ha-1", 30*time.Second))
	require.Equal(t, 5, s.Delivered)
	assert.Equal(t, 2, s.Polls, "the poll, then the final poll")
	reqs := r.env.api.Requests()
	final := reqs[len(reqs)-1].Query
	assert.Equal(t, "5", final["last-processed-id"])
	assert.Equal(t, "1", final["limit"])

	require.NoError(t, r.proc.Process.Kill())
	_ = r.proc.Wait()
	r.start(t) // a cold start: a new instance
	r.env.api.Push(e2eKey, ilerttest.AlertEvents(2)...)
	s = summaryOf(t, r.rt.invoke(t, "ha-2", 30*time.Second))
	assert.Equal(t, 2, s.Delivered)
	assert.Equal(t, []int64{1, 2, 3, 4, 5, 6, 7}, r.tg.got(), "the next invocation delivers only what is new")
}
