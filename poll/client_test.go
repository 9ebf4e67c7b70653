package poll_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
)

const testKey = "iec1-test-key-5ecret"

func newClient(t *testing.T, url string) *poll.Client {
	t.Helper()
	c, err := poll.NewClient(poll.ClientConfig{BaseURL: url, Key: testKey, Timeout: 2 * time.Second, MaxResponseBytes: 1 << 20})
	require.NoError(t, err)
	return c
}

func TestPollRequestShape(t *testing.T) {
	api := ilerttest.New(testKey)
	srv := api.Start()
	defer srv.Close()
	c := newClient(t, srv.URL)

	_, err := c.Poll(context.Background(), poll.Query{AfterID: 42})
	require.NoError(t, err)
	_, err = c.Poll(context.Background(), poll.Query{ClusterID: "prod", InstanceID: "node-1", LastProcessedID: 7})
	require.NoError(t, err)
	_, err = c.Poll(context.Background(), poll.Query{ClusterID: "prod", InstanceID: "node-1"})
	require.NoError(t, err)

	reqs := api.Requests()
	require.Len(t, reqs, 3)
	r := reqs[0]
	assert.Equal(t, "/api/edge-connections/events", r.Path)
	assert.Equal(t, map[string]string{"limit": "100", "after-id": "42"}, r.Query)
	assert.Equal(t, testKey, r.Authorization, "raw key, no Bearer")
	assert.Equal(t, "edgepoll/"+poll.Version, r.UserAgent)
	assert.Equal(t, "application/json", r.Accept)
	assert.Equal(t, map[string]string{"limit": "100", "cluster-id": "prod", "instance-id": "node-1", "last-processed-id": "7"}, reqs[1].Query)
	assert.Equal(t, map[string]string{"limit": "100", "cluster-id": "prod", "instance-id": "node-1"}, reqs[2].Query)
}

func TestPollReturnsItemsInOrderWithRawPayloads(t *testing.T) {
	api := ilerttest.New(testKey)
	raw := `{"id":"100","eventType":"alert-created","big":12345678901234567890123,"esc":"a\u00e9\"\\\n","uni":"Grüße 🚨","timestamp":"2026-05-04T10:00:00.000Z"}`
	api.PushItems(testKey,
		ilerttest.Item{ID: 9, Payload: json.RawMessage(`{"id":9}`)},
		ilerttest.Item{ID: 3, Payload: json.RawMessage(raw)},
		ilerttest.Item{ID: 5, Payload: json.RawMessage(`{"eventType":["odd"],"id":null}`)},
	)
	srv := api.Start()
	defer srv.Close()
	b, err := newClient(t, srv.URL).Poll(context.Background(), poll.Query{})
	require.NoError(t, err)
	require.Len(t, b.Items, 3)
	assert.Equal(t, []int64{3, 5, 9}, []int64{b.Items[0].ID, b.Items[1].ID, b.Items[2].ID})
	assert.Equal(t, raw, string(b.Items[0].Payload), "payload bytes unchanged")
	assert.Equal(t, "alert-created", b.Items[0].EventType)
	assert.Equal(t, "100", b.Items[0].AlertID)
	assert.Equal(t, "2026-05-04T10:00:00.000Z", b.Items[0].Timestamp)
	assert.Equal(t, "", b.Items[1].EventType, "odd types never block delivery")
	assert.Equal(t, "", b.Items[1].AlertID)
	assert.Equal(t, "9", b.Items[2].AlertID, "a numeric alert id still becomes metadata")
	assert.False(t, b.Full)
}

func TestPollFullBatch(t *testing.T) {
	api := ilerttest.New(testKey)
	api.Push(testKey, ilerttest.AlertEvents(150)...)
	srv := api.Start()
	defer srv.Close()
	c := newClient(t, srv.URL)
	b, err := c.Poll(context.Background(), poll.Query{})
	require.NoError(t, err)
	assert.Len(t, b.Items, 100)
	assert.True(t, b.Full)
	b, err = c.Poll(context.Background(), poll.Query{AfterID: 100})
	require.NoError(t, err)
	assert.Len(t, b.Items, 50)
	assert.False(t, b.Full)
	assert.Equal(t, int64(101), b.Items[0].ID)
}

func TestPollErrors(t *testing.T) {
	cases := []struct {
		name   string
		fault  ilerttest.Fault
		reason string
		msg    string
	}{
		{"401", ilerttest.Fault{Status: 401}, "auth", "authentication failed — check integration key"},
		{"500", ilerttest.Fault{Status: 500, Body: []byte("oops")}, "status_500", "500"},
		{"404", ilerttest.Fault{Status: 404}, "status_404", "404"},
		{"array", ilerttest.Fault{Body: []byte(`[{"id":1}]`)}, "decode", "not a JSON object"},
		{"truncated", ilerttest.Fault{Body: []byte(`{"items":[{"id":1,"payload":{"a":`)}, "decode", "truncated"},
		{"items wrong type", ilerttest.Fault{Body: []byte(`{"items":{"id":1}}`)}, "decode", "items"},
		{"items missing", ilerttest.Fault{Body: []byte(`{"foo":[]}`)}, "decode", `no "items"`},
		{"items null", ilerttest.Fault{Body: []byte(`{"items":null}`)}, "decode", `no "items"`},
		{"string id", ilerttest.Fault{Body: []byte(`{"items":[{"id":"1","payload":{}}]}`)}, "bad_item", "not an integer"},
		{"float id", ilerttest.Fault{Body: []byte(`{"items":[{"id":1.5,"payload":{}}]}`)}, "bad_item", "not an integer"},
		{"exp id", ilerttest.Fault{Body: []byte(`{"items":[{"id":1e3,"payload":{}}]}`)}, "bad_item", "not an integer"},
		{"huge id", ilerttest.Fault{Body: []byte(`{"items":[{"id":99999999999999999999,"payload":{}}]}`)}, "bad_item", "not an integer"},
		{"zero id", ilerttest.Fault{Body: []byte(`{"items":[{"id":0,"payload":{}}]}`)}, "bad_item", "not positive"},
		{"missing id", ilerttest.Fault{Body: []byte(`{"items":[{"payload":{}}]}`)}, "bad_item", "missing"},
		{"payload string", ilerttest.Fault{Body: []byte(`{"items":[{"id":1,"payload":"x"}]}`)}, "bad_item", "payload"},
		{"payload missing", ilerttest.Fault{Body: []byte(`{"items":[{"id":1}]}`)}, "bad_item", "payload"},
		{"item not object", ilerttest.Fault{Body: []byte(`{"items":[7]}`)}, "bad_item", "expected"},
		{"trailing", ilerttest.Fault{Body: []byte(`{"items":[]} {"items":[]}`)}, "decode", "trailing"},
		{"role number", ilerttest.Fault{Body: []byte(`{"items":[],"role":1}`)}, "decode", "role"},
		{"empty", ilerttest.Fault{Body: []byte(``), Status: 200}, "decode", "empty"},
		{"garbage", ilerttest.Fault{Body: []byte(strings.Repeat("\x00garbage", 1<<18))}, "too_large", "larger than"},
		{"html", ilerttest.Fault{Body: []byte("<html>gateway</html>")}, "decode", "not a JSON object"},
		{"dropped", ilerttest.Fault{Drop: true}, "transport", "unreachable"},
		{"slow", ilerttest.Fault{Delay: 5 * time.Second}, "timeout", "timed out"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api := ilerttest.New(testKey)
			api.Fail(tc.fault)
			srv := api.Start()
			defer srv.Close()
			_, err := newClient(t, srv.URL).Poll(context.Background(), poll.Query{})
			require.Error(t, err)
			var pe *poll.PollError
			require.True(t, errors.As(err, &pe), "%T", err)
			assert.Equal(t, tc.reason, pe.Reason)
			assert.Contains(t, err.Error(), tc.msg)
			assert.Less(t, len(err.Error()), 300, "bounded reason: %s", err)
			assert.NotContains(t, err.Error(), testKey)
		})
	}
}

func TestPollWrongKeyIsAuthError(t *testing.T) {
	api := ilerttest.New("other-key")
	srv := api.Start()
	defer srv.Close()
	_, err := newClient(t, srv.URL).Poll(context.Background(), poll.Query{})
	require.ErrorIs(t, err, poll.ErrAuth)
}

func TestPollUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, err := newClient(t, url).Poll(context.Background(), poll.Query{})
	var pe *poll.PollError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "transport", pe.Reason)
}

func TestHeartbeatErrorHidesKey(t *testing.T) {
	api := ilerttest.New(testKey)
	srv := api.Start()
	c := newClient(t, srv.URL)
	require.NoError(t, c.Heartbeat(context.Background(), "il1hbt-secret"))
	assert.Equal(t, 1, api.Heartbeats("il1hbt-secret"))
	srv.Close()
	err := c.Heartbeat(context.Background(), "il1hbt-secret")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "il1hbt-secret")
}

func TestNewClientValidates(t *testing.T) {
	for _, u := range []string{"ftp://x", "not a url", "http://"} {
		_, err := poll.NewClient(poll.ClientConfig{BaseURL: u, Key: "k"})
		assert.Error(t, err, u)
	}
	_, err := poll.NewClient(poll.ClientConfig{Key: ""})
	assert.Error(t, err)
	_, err = poll.NewClient(poll.ClientConfig{BaseURL: "https://user:pw@example.com?x=secret", Key: "\n"})
	assert.Error(t, err)
}

// recorder is a loopback server that records what reaches it.
type recorder struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []*http.Request
}

func newRecorder(t *testing.T, h http.HandlerFunc) *recorder {
	r := &recorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.reqs = append(r.reqs, req.Clone(context.Background()))
		r.mu.Unlock()
		h(w, req)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) got() []*http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*http.Request(nil), r.reqs...)
}

// No secret crosses a redirect: the API and the heartbeat redirecting to
// another port (another origin) are refused before anything is sent there;
// a redirect within the origin is followed without a Referer (a heartbeat's
// would carry its key).
func TestNoSecretCrossesARedirect(t *testing.T) {
	const hbKey = "il1hbt-redirect-5ecret"
	other := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"items":[]}`)) })
	api := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/away/"):
			http.Redirect(w, r, other.srv.URL+r.URL.Path, http.StatusFound)
		case strings.HasPrefix(r.URL.Path, "/here/api/"):
			http.Redirect(w, r, "/moved"+r.URL.Path, http.StatusTemporaryRedirect)
		case strings.HasPrefix(r.URL.Path, "/moved/"):
			_, _ = w.Write([]byte(`{"items":[]}`))
		default:
			http.NotFound(w, r)
		}
	})

	away := newClient(t, api.srv.URL+"/away")
	_, err := away.Poll(context.Background(), poll.Query{})
	var pe *poll.PollError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "redirect", pe.Reason)
	assert.ErrorIs(t, err, poll.ErrCrossOriginRedirect)
	err = away.Heartbeat(context.Background(), hbKey)
	require.ErrorIs(t, err, poll.ErrCrossOriginRedirect)
	assert.NotContains(t, err.Error(), hbKey)
	assert.Empty(t, other.got(), "nothing reaches another port")

	here := newClient(t, api.srv.URL+"/here")
	_, err = here.Poll(context.Background(), poll.Query{})
	require.NoError(t, err)
	require.NoError(t, here.Heartbeat(context.Background(), hbKey))
	var moved int
	for _, r := range api.got() {
		if strings.HasPrefix(r.URL.Path, "/moved/") {
			moved++
			assert.Empty(t, r.Header.Get("Referer"), "no Referer on a followed redirect")
		}
	}
	assert.Equal(t, 2, moved, "same-origin redirects are followed")
}

// padded returns n payloads of size bytes each.
func padded(n, size int) []json.RawMessage {
	out := make([]json.RawMessage, n)
	for i := range out {
		out[i] = json.RawMessage(`{"eventType":"alert-created","details":"` + strings.Repeat("x", size-len(`{"eventType":"alert-created","details":""}`)) + `"}`)
	}
	return out
}

// An answer over the response limit (1 MiB here) is asked again with a
// smaller limit: half, or the number of items that fitted if fewer; the
// pages come back whole, in order, Full relative to the limit asked, and
// the smaller limit is kept while the items stay large.
func TestPollShrinksTheLimitWhenTheAnswerIsTooLarge(t *testing.T) {
	for _, tc := range []struct {
		name   string
		size   int
		limits []string // the limit of each request, in order
		pages  []int    // items per page
	}{
		// 100 × 15 KiB: 68 fit; half of 100 is less: 50 (750 KiB).
		{"halved", 15 << 10, []string{"100", "50", "50", "50"}, []int{50, 50, 20}},
		// 100 × 300 KiB: 3 fit: ask for 3 (900 KiB).
		{"to what fitted", 300 << 10, []string{"100", "3", "3", "3"}, []int{3, 3, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := ilerttest.New(testKey)
			var total int
			for _, n := range tc.pages {
				total += n
			}
			payloads := padded(total, tc.size)
			api.Push(testKey, payloads...)
			srv := api.Start()
			defer srv.Close()
			c := newClient(t, srv.URL)
			var after int64
			for i, n := range tc.pages {
				b, err := c.Poll(context.Background(), poll.Query{AfterID: after})
				require.NoError(t, err, "page %d", i)
				require.Len(t, b.Items, n, "page %d", i)
				for j, ev := range b.Items {
					assert.Equal(t, after+int64(j)+1, ev.ID)
					assert.Equal(t, string(payloads[ev.ID-1]), string(ev.Payload))
				}
				assert.Equal(t, i < len(tc.pages)-1, b.Full, "page %d full", i)
				after = b.Items[len(b.Items)-1].ID
			}
			var limits []string
			for _, r := range api.Requests() {
				limits = append(limits, r.Query["limit"])
			}
			assert.Equal(t, tc.limits, limits)
		})
	}
}

// An item that alone passes the response limit fails the poll naming the
// id it follows (each time: the queue cannot move past it); the items
// before it are fetched first, and the limit grows back once answers are
// small again.
func TestPollItemAloneOverTheLimitIsNamed(t *testing.T) {
	api := ilerttest.New(testKey)
	api.Push(testKey, padded(1, 1<<10)...)
	api.Push(testKey, padded(1, 2<<20)...)
	srv := api.Start()
	defer srv.Close()
	c := newClient(t, srv.URL)

	b, err := c.Poll(context.Background(), poll.Query{})
	require.NoError(t, err)
	require.Len(t, b.Items, 1, "the item that fitted")
	assert.Equal(t, int64(1), b.Items[0].ID)
	assert.True(t, b.Full, "a page of the smaller limit: more is waiting")
	for range 2 {
		_, err = c.Poll(context.Background(), poll.Query{AfterID: 1})
		var pe *poll.PollError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, "too_large", pe.Reason)
		assert.Contains(t, err.Error(), "the edge item after id 1 alone is larger than the 1048576-byte response limit")
	}
	_, err = c.Poll(context.Background(), poll.Query{ClusterID: "c", InstanceID: "i", LastProcessedID: 1})
	assert.ErrorContains(t, err, "the edge item after id 1 alone")

	api.Push(testKey, padded(3, 1<<10)...) // ids 3..5, small again
	b, err = c.Poll(context.Background(), poll.Query{AfterID: 2})
	require.NoError(t, err)
	assert.Len(t, b.Items, 1)
	b, err = c.Poll(context.Background(), poll.Query{AfterID: 3})
	require.NoError(t, err)
	assert.Len(t, b.Items, 2, "the limit doubled after a small answer")
	var limits []string
	for _, r := range api.Requests() {
		limits = append(limits, r.Query["limit"])
	}
	assert.Equal(t, []string{"100", "1", "2", "1", "1", "1", "1", "2"}, limits)
}

// A garbage answer over the limit is too_large at once, not asked again
// with smaller limits (it is no page of items).
func TestPollGarbageOverTheLimitIsNotRetried(t *testing.T) {
	api := ilerttest.New(testKey)
	api.Fail(ilerttest.Fault{Body: []byte(strings.Repeat("<html>", 1<<18))})
	srv := api.Start()
	defer srv.Close()
	_, err := newClient(t, srv.URL).Poll(context.Background(), poll.Query{})
	var pe *poll.PollError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "too_large", pe.Reason)
	assert.Len(t, api.Requests(), 1)
}

// A connection lost in the middle of the answer is a transport failure,
// not a malformed answer.
func TestPollAnswerCutOffIsTransport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "100000")
		_, _ = w.Write([]byte(`{"items":[{"id":1,"payload":{"a":"`))
		w.(http.Flusher).Flush()
		c, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			c.Close()
		}
	}))
	defer srv.Close()
	_, err := newClient(t, srv.URL).Poll(context.Background(), poll.Query{})
	var pe *poll.PollError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "transport", pe.Reason, "%v", err)
}
