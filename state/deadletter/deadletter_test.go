package deadletter

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/internal/dynalitetest"
	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/state"
	"github.com/edgepoll/edgepoll/state/dynamo"
)

func TestMain(m *testing.M) {
	code := m.Run()
	dynalitetest.StopShared()
	os.Exit(code)
}

var tables atomic.Int32

const (
	connA = "0123456789abcdef0123456789abcdef"
	connB = "fedcba9876543210fedcba9876543210"
)

func rec(conn string, id int64, payload string) Record {
	err := poll.Permanent("http_404", errors.New("target answered 404"))
	err.(*poll.DeliveryError).Status = 404
	return poll.NewDeadLetterRecord(conn, poll.Event{ID: id, Payload: []byte(payload)}, err,
		time.Date(2026, 11, 26, 8, 0, int(id), 0, time.UTC))
}

// Both backends: records per connection, in item order, removable.
func TestBackends(t *testing.T) {
	backends := map[string]func(t *testing.T) Store{
		"file": func(t *testing.T) Store {
			f, err := OpenFile(filepath.Join(t.TempDir(), "dead.jsonl"))
			require.NoError(t, err)
			return f
		},
		"dynamodb": func(t *testing.T) Store {
			srv := dynalitetest.Shared(t)
			name := fmt.Sprintf("dl-%d", tables.Add(1))
			srv.CreateTable(t, name)
			d, err := OpenDynamo(context.Background(), name, srv.StoreClient())
			require.NoError(t, err)
			return d
		},
	}
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := open(t)
			defer s.Close()
			empty, err := s.List(ctx, connA)
			require.NoError(t, err)
			assert.Empty(t, empty)
			payload := `{"eventType": "alert-created", "id": 7, "note": "<b>&amp;</b>"}`
			for _, r := range []Record{rec(connA, 3, payload), rec(connB, 4, `{"x":1}`), rec(connA, 5, `{"y":2}`)} {
				require.NoError(t, s.Append(ctx, r.Connection, r))
			}
			got, err := s.List(ctx, connA)
			require.NoError(t, err)
			require.Len(t, got, 2)
			assert.Equal(t, []int64{3, 5}, []int64{got[0].ID, got[1].ID})
			assert.Equal(t, payload, string(got[0].Payload), "payload verbatim")
			assert.Equal(t, "http_404", got[0].Reason)
			assert.Equal(t, 404, got[0].Status)
			assert.Equal(t, "permanent delivery failure: http_404: target answered 404", got[0].Error)
			assert.True(t, got[0].SkippedAt.Equal(time.Date(2026, 11, 26, 8, 0, 3, 0, time.UTC)))
			assert.Equal(t, "alert-created", got[0].Event().EventType, "the metadata of a replay comes from the payload")

			require.NoError(t, s.Remove(ctx, connA, 3))
			got, err = s.List(ctx, connA)
			require.NoError(t, err)
			require.Len(t, got, 1)
			assert.Equal(t, int64(5), got[0].ID)
			other, err := s.List(ctx, connB)
			require.NoError(t, err)
			require.Len(t, other, 1, "another connection's records stay")
		})
	}
}

// The file is the contract's JSON lines, private, and survives a torn line.
func TestFileFormat(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "dead.jsonl")
	f, err := OpenFile(p)
	require.NoError(t, err)
	require.NoError(t, f.Append(ctx, connA, rec(connA, 1, `{"a": [1, 2]}`)))
	st, err := os.Stat(p)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	// A crash mid-write leaves a torn line; the next record still reads.
	fd, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, _ = fd.WriteString(`{"id":2,"reas`)
	fd.Close()
	noStatus := poll.NewDeadLetterRecord(connA, poll.Event{ID: 3, Payload: []byte("{\n \"b\": 1\n}")}, poll.Permanent("too_large", errors.New("record too large")), time.Now())
	require.NoError(t, f.Append(ctx, connA, noStatus))

	raw, err := os.ReadFile(p)
	require.NoError(t, err)
	sc := bufio.NewScanner(bytes.NewReader(raw))
	var docs []map[string]json.RawMessage
	for sc.Scan() {
		var m map[string]json.RawMessage
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			docs = append(docs, m)
		}
	}
	require.Len(t, docs, 2)
	assert.Equal(t, `{"a": [1, 2]}`, string(docs[0]["payload"]))
	assert.Equal(t, "404", string(docs[0]["status"]))
	assert.Equal(t, `{"b":1}`, string(docs[1]["payload"]), "a multi-line payload is compacted onto its line")
	assert.Equal(t, "null", string(docs[1]["status"]))
	for _, k := range []string{"id", "reason", "status", "error", "skipped_at", "payload"} {
		assert.Contains(t, docs[1], k)
	}
	var at string
	require.NoError(t, json.Unmarshal(docs[1]["skipped_at"], &at))
	_, err = time.Parse(time.RFC3339, at)
	assert.NoError(t, err, "skipped_at is RFC 3339")

	got, err := f.List(ctx, connA)
	require.NoError(t, err)
	assert.Equal(t, []int64{1, 3}, []int64{got[0].ID, got[1].ID})
}

// unwritable makes the dead letter at p fail every write, even for root:
// its lock file is a directory.
func unwritable(t *testing.T, p string) {
	require.NoError(t, os.Mkdir(p+".lock", 0o700))
}

func TestFileUnwritable(t *testing.T) {
	p := filepath.Join(t.TempDir(), "dead.jsonl")
	f, err := OpenFile(p)
	require.NoError(t, err)
	unwritable(t, p)
	err = f.Append(context.Background(), connA, rec(connA, 1, `{}`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "dead letter "+p)
}

func TestParse(t *testing.T) {
	for _, ok := range []string{"file:/tmp/x", "dynamodb:edgepoll", "state", "none"} {
		_, _, err := Parse(ok)
		assert.NoError(t, err, ok)
	}
	for _, bad := range []string{"", "file:", "s3:bucket", "dynamodb:a", "/tmp/x", "State", "none:x"} {
		_, _, err := Parse(bad)
		assert.Error(t, err, bad)
	}
}

// --dead-letter state: the backend's own dead letter (DynamoDB: the state
// table, connected on first use, so a run that skips nothing makes no
// call); a local backend that keeps none yet: PATH.deadletter.jsonl beside
// the state file.
func TestInState(t *testing.T) {
	local := state.Backend{Scheme: "sqlite", Local: true}
	assert.Equal(t, "file:/var/lib/edgepoll/state.db.deadletter.jsonl", InStateName(local, "/var/lib/edgepoll/state.db"))
	p := filepath.Join(t.TempDir(), "state.db")
	f, err := OpenInState(context.Background(), local, p, nil)
	require.NoError(t, err)
	require.NoError(t, f.Append(context.Background(), connA, rec(connA, 1, `{}`)))
	_, err = os.Stat(p + ".deadletter.jsonl")
	require.NoError(t, err)

	srv := dynalitetest.Shared(t)
	name := fmt.Sprintf("dl-%d", tables.Add(1))
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	d, err := OpenInState(context.Background(), dynamo.Backend, name, nil)
	require.NoError(t, err, "no call before first use: the table need not exist yet")
	err = d.Append(context.Background(), connA, rec(connA, 1, `{}`))
	require.Error(t, err, "no such table")
	srv.CreateTable(t, name)
	require.NoError(t, d.Append(context.Background(), connA, rec(connA, 2, `{"a":1}`)), "opened after a failed first try")
	got, err := d.List(context.Background(), connA)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, int64(2), got[0].ID)
	require.NoError(t, d.Remove(context.Background(), connA, 2))
	require.NoError(t, d.Close())

	// A remote backend that keeps no dead letter: the first Append fails
	// (the item is then not skipped), naming what to set.
	none, err := OpenInState(context.Background(), state.Backend{Scheme: "redis"}, "x", nil)
	require.NoError(t, err)
	err = none.Append(context.Background(), connA, rec(connA, 1, `{}`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--dead-letter")
}

// scanCounter counts the DynamoDB Scan requests passing through it.
type scanCounter struct{ n atomic.Int32 }

func (c *scanCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("X-Amz-Target") == "DynamoDB_20120810.Scan" {
		c.n.Add(1)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// A dead letter larger than one Scan page (1 MB) is listed whole, in item
// order, across pages.
func TestDynamoListFollowsPages(t *testing.T) {
	srv := dynalitetest.Shared(t)
	name := fmt.Sprintf("dl-%d", tables.Add(1))
	srv.CreateTable(t, name)
	var scans scanCounter
	c := dynamodb.New(srv.StoreClient().Options(), func(o *dynamodb.Options) { o.HTTPClient = &http.Client{Transport: &scans} })
	d, err := OpenDynamo(context.Background(), name, c)
	require.NoError(t, err)
	payload := `{"pad":"` + strings.Repeat("x", 8000) + `"}`
	const n = 200 // 1.6 MB
	for id := int64(n); id >= 1; id-- {
		require.NoError(t, d.Append(context.Background(), connA, rec(connA, id, payload)))
	}
	got, err := d.List(context.Background(), connA)
	require.NoError(t, err)
	require.Len(t, got, n)
	for i, r := range got {
		require.Equal(t, int64(i+1), r.ID)
	}
	assert.Greater(t, scans.n.Load(), int32(1), "more than one page")
}
