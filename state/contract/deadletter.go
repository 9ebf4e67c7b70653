package contract

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/state"
)

// DeadLetterHarness describes a backend's dead letter to RunDeadLetter.
type DeadLetterHarness struct {
	// Fresh returns a new, empty location (the state file, the table).
	Fresh func(t *testing.T) string
	// Open opens the dead letter at loc; every call an independent handle,
	// as another process would have. The suite closes the handles.
	Open func(t *testing.T, loc string) state.DeadLetter
}

func deadRecord(conn string, id int64, payload string) poll.DeadLetterRecord {
	err := poll.Permanent("http_404", errors.New("target answered 404"))
	err.(*poll.DeliveryError).Status = 404
	return poll.NewDeadLetterRecord(conn, poll.Event{ID: id, Payload: []byte(payload)}, err,
		time.Date(2026, 11, 26, 8, 0, int(id), 0, time.UTC))
}

// RunDeadLetter runs the dead-letter suite: records per connection, in
// item order whatever the order of appends, the payload verbatim, one
// record per item (an item skipped again after a crash), what Append
// returned for is there for another handle (another process), removal.
func RunDeadLetter(t *testing.T, h DeadLetterHarness) {
	ctx := context.Background()
	open := func(t *testing.T, loc string) state.DeadLetter {
		d := h.Open(t, loc)
		t.Cleanup(func() { _ = d.Close() })
		return d
	}
	ids := func(t *testing.T, d state.DeadLetter, conn string) []int64 {
		t.Helper()
		recs, err := d.List(ctx, conn)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		out := []int64{}
		for _, r := range recs {
			out = append(out, r.ID)
		}
		return out
	}
	same := func(a, b []int64) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if a[i] != b[i] {
				return false
			}
		}
		return true
	}
	t.Run("EmptyAtFirst", func(t *testing.T) {
		if got := ids(t, open(t, h.Fresh(t)), connA); len(got) != 0 {
			t.Fatalf("a new dead letter lists %v", got)
		}
	})
	t.Run("PerConnectionInItemOrderVerbatim", func(t *testing.T) {
		loc := h.Fresh(t)
		d := open(t, loc)
		payload := `{"eventType": "alert-created", "id": 7, "note": "<b>&amp;</b>"}`
		for _, r := range []poll.DeadLetterRecord{deadRecord(connA, 5, `{"y":2}`), deadRecord(connB, 4, `{"x":1}`),
			deadRecord(connA, 3, payload)} {
			if err := d.Append(ctx, r.Connection, r); err != nil {
				t.Fatalf("Append: %v", err)
			}
		}
		other := open(t, loc)
		if got := ids(t, other, connA); !same(got, []int64{3, 5}) {
			t.Fatalf("another handle lists %v, want [3 5]", got)
		}
		if got := ids(t, other, connB); !same(got, []int64{4}) {
			t.Fatalf("connection B: %v, want [4]", got)
		}
		recs, _ := other.List(ctx, connA)
		r := recs[0]
		if string(r.Payload) != payload || r.Reason != "http_404" || r.Status != 404 || r.Connection != connA ||
			!r.SkippedAt.Equal(time.Date(2026, 11, 26, 8, 0, 3, 0, time.UTC)) {
			t.Fatalf("record not kept as appended: %+v", r)
		}
	})
	t.Run("OneRecordPerItem", func(t *testing.T) {
		d := open(t, h.Fresh(t))
		for _, p := range []string{`{"try":1}`, `{"try":2}`} {
			if err := d.Append(ctx, connA, deadRecord(connA, 9, p)); err != nil {
				t.Fatalf("Append: %v", err)
			}
		}
		recs, err := d.List(ctx, connA)
		if err != nil || len(recs) != 1 || string(recs[0].Payload) != `{"try":2}` {
			t.Fatalf("an item skipped twice: List = %+v, %v; want the latest record alone", recs, err)
		}
	})
	t.Run("Remove", func(t *testing.T) {
		loc := h.Fresh(t)
		d := open(t, loc)
		for _, id := range []int64{1, 2, 3} {
			if err := d.Append(ctx, connA, deadRecord(connA, id, `{}`)); err != nil {
				t.Fatalf("Append: %v", err)
			}
		}
		if err := d.Append(ctx, connB, deadRecord(connB, 2, `{}`)); err != nil {
			t.Fatalf("Append: %v", err)
		}
		if err := d.Remove(ctx, connA, 1, 3, 99); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		other := open(t, loc)
		if got := ids(t, other, connA); !same(got, []int64{2}) {
			t.Fatalf("after Remove(1, 3, 99): %v, want [2]", got)
		}
		if got := ids(t, other, connB); !same(got, []int64{2}) {
			t.Fatalf("another connection's record of the same id: %v, want [2]", got)
		}
	})
}
