// Package contract is the test suite every delivery target's poll.Sink
// passes, as state/contract is for the state backends: delivery in order,
// one report per item, a permanent refusal of one item that leaves its
// neighbours delivered, a retryable failure (the target down) that
// delivers nothing, reports no item delivered and recovers once the target
// is back, a refusal by report (no new delivery started), context
// cancellation (before and during a batch, and against a target that does
// not answer), Close twice, and Check (poll.Checker) on a working and, where
// it can tell, on a broken target.
//
// A target's test calls Run with a Harness whose New starts a real target
// (an HTTP server, a kfake cluster, a mosquitto broker, a script, a file)
// and a sink on it built through the target's sinks.Registration, the way
// edgepoll builds it.
package contract

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/sinks"
)

// Target is one fresh target and a sink on it (the suite closes the sink).
type Target struct {
	Sink poll.Sink
	// Received returns the edge item ids (poll.Event.ItemID) the target
	// accepted so far, in the order it accepted them. An item it refused
	// is not in it.
	Received func() []string
	// Break makes the target fail every delivery retryably (it is down,
	// answers 503, cannot be run) until repair is called. Required.
	Break func() (repair func())
	// Hang, when set, makes the target take deliveries and never answer
	// until release is called (release also ends what is hanging).
	Hang func() (release func())
}

// Harness describes a target to the suite.
type Harness struct {
	// New starts a fresh target and opens a sink on it.
	New func(t *testing.T) Target
	// Refused, when set, returns the event with id id changed so that the
	// target refuses it permanently (too large for the broker, an HTTP
	// 400, invalid JSON). Nil: the target has no permanent failure (the
	// script: any exit status but 0 is retryable); the suite then checks
	// nothing of that kind.
	Refused func(ev poll.Event) poll.Event
	// Pipelined: the sink has several deliveries in flight (Kafka, MQTT).
	// A sequential sink must not start item i+1 before report(i) returned;
	// the suite then checks exactly what reached the target after a
	// refusal by report, a retryable failure or a cancellation.
	Pipelined bool
	// CheckSeesBreak: the sink is a poll.Checker whose Check fails (within
	// seconds) while the target is broken (Break). Otherwise Check (if any) is only
	// required to pass on a working target.
	CheckSeesBreak bool
}

// Open validates a target's configuration and opens its sink, as edgepoll
// does (a Harness's New builds the sink with it).
func Open(t *testing.T, tg sinks.Target, sh sinks.Shared, env sinks.Env) poll.Sink {
	t.Helper()
	if err := tg.Validate(sh); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	s, err := tg.Open(context.Background(), sh, env)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// Events returns n events with item ids from..from+n-1, alert ids cycling
// over five keys; each payload carries its item id as "contractItem" (see
// ItemOfPayload) for a target that receives only the payload (stdout).
func Events(from int64, n int) []poll.Event {
	evs := make([]poll.Event, n)
	for i := range evs {
		id := from + int64(i)
		evs[i] = poll.NewEvent(id, []byte(fmt.Sprintf(
			`{"id":"alert-%d","eventType":"alert-created","summary":"contract item %d","contractItem":%d}`, id%5, id, id)))
	}
	return evs
}

// ItemOfPayload returns the "contractItem" of an Events payload ("" if it
// has none).
func ItemOfPayload(p []byte) string {
	var v struct {
		Item *int64 `json:"contractItem"`
	}
	if json.Unmarshal(p, &v) != nil || v.Item == nil {
		return ""
	}
	return strconv.FormatInt(*v.Item, 10)
}

func ids(evs []poll.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ItemID()
	}
	return out
}

// sendGuard bounds a Send (a var: a target's test may lengthen it).
var sendGuard = time.Minute

// reports records every report of one Send.
type reports struct {
	mu    sync.Mutex
	errs  map[int]error
	order []int
	twice []int
	late  []int // reported after Send returned
	done  bool
	// refuseAfter >= 0: report returns false from that index on.
	refuseAfter int
	onReport    func(i int)
}

func newReports() *reports { return &reports{errs: map[int]error{}, refuseAfter: -1} }

func (r *reports) report(i int, err error) bool {
	r.mu.Lock()
	if r.done {
		r.late = append(r.late, i)
	}
	if _, dup := r.errs[i]; dup {
		r.twice = append(r.twice, i)
	}
	r.errs[i] = err
	r.order = append(r.order, i)
	more := r.refuseAfter < 0 || i < r.refuseAfter
	hook := r.onReport
	r.mu.Unlock()
	if hook != nil {
		hook(i)
	}
	return more
}

// send runs s.Send and checks what holds for every Send: it returns (a
// guard fails the test after a minute), no index outside evs and none
// twice, nothing reported after it returned.
func send(t *testing.T, ctx context.Context, s poll.Sink, evs []poll.Event, r *reports) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Send(ctx, evs, r.report)
	}()
	select {
	case <-done:
	case <-time.After(sendGuard):
		t.Fatalf("Send did not return within %s", sendGuard)
	}
	r.mu.Lock()
	r.done = true
	r.mu.Unlock()
	time.Sleep(10 * time.Millisecond) // a late report would land now
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.twice) > 0 {
		t.Fatalf("items reported twice: %v", r.twice)
	}
	if len(r.late) > 0 {
		t.Fatalf("items reported after Send returned: %v", r.late)
	}
	for i := range r.errs {
		if i < 0 || i >= len(evs) {
			t.Fatalf("report(%d) for a batch of %d", i, len(evs))
		}
	}
}

// delivered returns the ids of the items reported nil, in item order.
func (r *reports) delivered(evs []poll.Event) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for i, ev := range evs {
		if err, ok := r.errs[i]; ok && err == nil {
			out = append(out, ev.ItemID())
		}
	}
	return out
}

// received waits until the target received want (in that order) and
// fails if it received anything else.
func received(t *testing.T, tg Target, want []string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := tg.Received()
		if slices.Equal(got, want) {
			return
		}
		if len(got) >= len(want) || time.Now().After(deadline) {
			t.Fatalf("target received %v, want %v", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// subset fails unless every id in want was received (the target may have
// received more: a pipelined sink's deliveries in flight).
func subset(t *testing.T, tg Target, want []string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := tg.Received()
		missing := slices.DeleteFunc(slices.Clone(want), func(id string) bool { return slices.Contains(got, id) })
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("reported delivered but never received: %v (received %v)", missing, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func open(t *testing.T, h Harness) Target {
	t.Helper()
	tg := h.New(t)
	t.Cleanup(func() { _ = tg.Sink.Close() })
	return tg
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	t.Run("InOrderEachReportedOnce", func(t *testing.T) { inOrder(t, h) })
	t.Run("PermanentRefusalKeepsNeighbours", func(t *testing.T) { permanent(t, h) })
	t.Run("TargetDownIsRetryableAndRecovers", func(t *testing.T) { down(t, h) })
	t.Run("RefusalByReportStartsNothingNew", func(t *testing.T) { refusedByReport(t, h) })
	t.Run("CanceledContextDeliversNothing", func(t *testing.T) { canceledBefore(t, h) })
	t.Run("CancelDuringBatch", func(t *testing.T) { canceledDuring(t, h) })
	t.Run("CancelEndsAHangingDelivery", func(t *testing.T) { hanging(t, h) })
	t.Run("CloseTwice", func(t *testing.T) { closeTwice(t, h) })
	t.Run("Check", func(t *testing.T) { check(t, h) })
}

func inOrder(t *testing.T, h Harness) {
	tg := open(t, h)
	for _, from := range []int64{1, 51} { // two batches on one sink
		evs := Events(from, 50)
		r := newReports()
		send(t, context.Background(), tg.Sink, evs, r)
		for i := range evs {
			err, ok := r.errs[i]
			if !ok || err != nil {
				t.Fatalf("item %s: reported %v (reported at all: %v)", evs[i].ItemID(), err, ok)
			}
		}
	}
	received(t, tg, ids(Events(1, 100)))
}

func permanent(t *testing.T, h Harness) {
	if h.Refused == nil {
		t.Skip("the target has no permanent failure")
	}
	tg := open(t, h)
	evs := Events(1, 7)
	evs[3] = h.Refused(evs[3])
	r := newReports()
	send(t, context.Background(), tg.Sink, evs, r)
	for i, ev := range evs {
		err, ok := r.errs[i]
		switch {
		case !ok:
			t.Fatalf("item %s not reported", ev.ItemID())
		case i == 3 && !poll.IsPermanent(err):
			t.Fatalf("refused item %s: reported %v, want a permanent failure", ev.ItemID(), err)
		case i == 3 && poll.ReasonOf(err) == "error":
			t.Fatalf("refused item %s: %v has no reason", ev.ItemID(), err)
		case i != 3 && err != nil:
			t.Fatalf("item %s beside the refused one: %v", ev.ItemID(), err)
		}
	}
	received(t, tg, []string{"1", "2", "3", "5", "6", "7"})
}

func down(t *testing.T, h Harness) {
	tg := open(t, h)
	evs := Events(1, 5)
	send(t, context.Background(), tg.Sink, evs[:1], newReports()) // connected once
	received(t, tg, []string{"1"})
	repair := tg.Break()
	r := newReports()
	send(t, context.Background(), tg.Sink, evs[1:], r)
	if len(r.errs) == 0 {
		t.Fatal("nothing reported while the target was down")
	}
	for i, err := range r.errs {
		if err == nil || poll.IsPermanent(err) {
			t.Fatalf("item %s while the target was down: %v, want a retryable failure", evs[1+i].ItemID(), err)
		}
		if poll.ReasonOf(err) == "error" {
			t.Fatalf("item %s: %v has no reason", evs[1+i].ItemID(), err)
		}
	}
	if !h.Pipelined && len(r.errs) != 1 {
		t.Fatalf("a sequential sink went on after a retryable failure: reports %v", r.order)
	}
	repair()
	r = newReports()
	send(t, context.Background(), tg.Sink, evs[1:], r)
	if got := r.delivered(evs[1:]); len(got) != 4 {
		t.Fatalf("after the target came back: delivered %v of %v, reports %v", got, ids(evs[1:]), r.errs)
	}
	received(t, tg, ids(evs))
}

func refusedByReport(t *testing.T, h Harness) {
	tg := open(t, h)
	evs := Events(1, 20)
	r := newReports()
	r.refuseAfter = 1 // report(1) returns false
	send(t, context.Background(), tg.Sink, evs, r)
	for _, i := range []int{0, 1} {
		if err, ok := r.errs[i]; !ok || err != nil {
			t.Fatalf("item %s: reported %v (reported at all: %v)", evs[i].ItemID(), err, ok)
		}
	}
	if h.Pipelined {
		subset(t, tg, r.delivered(evs))
		return
	}
	if len(r.errs) != 2 {
		t.Fatalf("a sequential sink went on after report returned false: reports %v", r.order)
	}
	received(t, tg, []string{"1", "2"})
}

func canceledBefore(t *testing.T, h Harness) {
	tg := open(t, h)
	send(t, context.Background(), tg.Sink, Events(1, 1), newReports()) // connected once
	received(t, tg, []string{"1"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	evs := Events(2, 10)
	r := newReports()
	send(t, ctx, tg.Sink, evs, r)
	if got := r.delivered(evs); len(got) > 0 {
		t.Fatalf("delivered %v with a canceled context", got)
	}
	for i, err := range r.errs {
		if poll.IsPermanent(err) {
			t.Fatalf("item %s: %v; a cancellation is never permanent", evs[i].ItemID(), err)
		}
	}
	time.Sleep(100 * time.Millisecond) // anything sent would have arrived
	if got := tg.Received(); len(got) != 1 {
		t.Fatalf("target received %v after a Send with a canceled context", got)
	}
}

func canceledDuring(t *testing.T, h Harness) {
	tg := open(t, h)
	evs := Events(1, 20)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := newReports()
	r.onReport = func(i int) {
		if i == 0 {
			cancel()
		}
	}
	send(t, ctx, tg.Sink, evs, r)
	if err, ok := r.errs[0]; !ok || err != nil {
		t.Fatalf("item 1: reported %v (reported at all: %v)", err, ok)
	}
	for i, err := range r.errs {
		if poll.IsPermanent(err) {
			t.Fatalf("item %s: %v; a cancellation is never permanent", evs[i].ItemID(), err)
		}
	}
	if h.Pipelined {
		subset(t, tg, r.delivered(evs))
		return
	}
	if len(r.errs) != 1 {
		t.Fatalf("a sequential sink started deliveries after ctx was canceled: reports %v", r.order)
	}
	received(t, tg, []string{"1"})
}

func hanging(t *testing.T, h Harness) {
	tg := open(t, h)
	if tg.Hang == nil {
		t.Skip("the harness cannot make the target hang")
	}
	send(t, context.Background(), tg.Sink, Events(1, 1), newReports()) // connected once
	received(t, tg, []string{"1"})
	release := tg.Hang()
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	evs := Events(2, 3)
	r := newReports()
	send(t, ctx, tg.Sink, evs, r) // returns: the guard fails the test otherwise
	if got := r.delivered(evs); len(got) > 0 {
		t.Fatalf("delivered %v to a target that never answered", got)
	}
	for i, err := range r.errs {
		if poll.IsPermanent(err) {
			t.Fatalf("item %s: %v; a cancellation is never permanent", evs[i].ItemID(), err)
		}
	}
}

func closeTwice(t *testing.T, h Harness) {
	tg := h.New(t)
	send(t, context.Background(), tg.Sink, Events(1, 3), newReports())
	received(t, tg, []string{"1", "2", "3"})
	if err := tg.Sink.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := tg.Sink.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func check(t *testing.T, h Harness) {
	tg := open(t, h)
	c, ok := tg.Sink.(poll.Checker)
	if !ok {
		if h.CheckSeesBreak {
			t.Fatal("CheckSeesBreak, but the sink is no poll.Checker")
		}
		t.Skip("the sink is no poll.Checker")
	}
	ctx := context.Background()
	if note, err := c.Check(ctx); err != nil {
		t.Fatalf("Check on a working target: %v", err)
	} else {
		t.Logf("Check: %q", note)
	}
	if !h.CheckSeesBreak {
		return
	}
	repair := tg.Break()
	// A sink may notice a dropped connection only a moment later (the
	// MQTT reader's EOF): Check must fail within a few seconds.
	deadline := time.Now().Add(10 * time.Second)
	for {
		note, err := c.Check(ctx)
		if err != nil {
			t.Logf("Check on a broken target: %v", err)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Check on a broken target kept passing: %q", note)
		}
		time.Sleep(20 * time.Millisecond)
	}
	repair()
	if _, err := c.Check(ctx); err != nil {
		t.Fatalf("Check after the target came back: %v", err)
	}
	// The sink still delivers after Checks.
	send(t, ctx, tg.Sink, Events(1, 2), newReports())
	received(t, tg, []string{"1", "2"})
}
