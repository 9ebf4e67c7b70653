// Package demo is the scenario of `make demo` (cmd/edgepoll-demo): an
// embedded fake ilert API seeded with realistic alert events, a local HTTP
// receiver that prints what it gets and can be taken down, and the real
// edgepoll binary run one cycle at a time to show in-order delivery, the
// persisted cursor and a failed delivery retried with nothing lost.
package demo

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgepoll/edgepoll/internal/syncio"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
)

// lifecycles returns the events first..first+n-1 of one coherent story:
// alert after alert, each created, then acknowledged (most), then
// resolved; every event is its own payload (its own state, time), none
// repeated under a new id. A story cut between two batches goes on in the
// next one.
func lifecycles(first, n int) []json.RawMessage {
	summaries := []string{"Server down", "Disk 95% full on db-01", "High latency on checkout API",
		"Certificate expires in 7 days", "Pod crash-looping: payments-7f9c", "Queue backlog > 10k"}
	sources := []string{"Prometheus prod", "Datadog", "Grafana", "AWS CloudWatch", "Zabbix"}
	status := map[string]string{"alert-created": "PENDING", "alert-acknowledged": "ACCEPTED", "alert-resolved": "RESOLVED"}
	base := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	out := make([]json.RawMessage, 0, n)
	for i := first; i < first+n; i++ {
		alert := 100 + i/3
		kind := []string{"alert-created", "alert-acknowledged", "alert-resolved"}[i%3]
		p := map[string]any{
			"id": strconv.Itoa(alert), "eventType": kind, "status": status[kind],
			"summary":     summaries[alert%len(summaries)],
			"priority":    []string{"HIGH", "LOW"}[alert%2],
			"timestamp":   base.Add(time.Duration(i) * 17 * time.Second).Format("2006-01-02T15:04:05.000Z"),
			"alertSource": map[string]any{"id": 9000 + alert%len(sources), "name": sources[alert%len(sources)]},
		}
		b, _ := json.Marshal(p)
		out = append(out, b)
	}
	return out
}

const demoKey = "iec1-demo-connector-key"

type receiver struct {
	mu   sync.Mutex
	ids  []string
	down bool      // answer 503: the target is down
	out  io.Writer // where it prints what it gets
}

func (r *receiver) setDown(down bool) {
	r.mu.Lock()
	r.down = down
	r.mu.Unlock()
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var p struct {
		ID, EventType, Summary, Status string
	}
	_ = json.Unmarshal(body, &p)
	r.mu.Lock()
	down := r.down
	if !down {
		r.ids = append(r.ids, req.Header.Get("X-ilert-Edge-Item-Id"))
	}
	r.mu.Unlock()
	if down {
		fmt.Fprintf(r.out, "  receiver xx item %-3s refused: 503 Service Unavailable (the target is down)\n", req.Header.Get("X-ilert-Edge-Item-Id"))
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintf(r.out, "  receiver <- item %-3s %-19s alert %-5s %-8s %q\n",
		req.Header.Get("X-ilert-Edge-Item-Id"), req.Header.Get("X-ilert-Event-Type"), p.ID, p.Status, p.Summary)
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ids)
}

// demoRun is the demo in progress: edgepoll's command line and where it
// prints.
type demoRun struct {
	w         io.Writer
	bin       string
	env, args []string
	recv      *receiver
}

// Run runs the demo with the edgepoll binary bin and n events, printing
// to w; the state goes to a new directory under parent ("" = the
// system's temporary directory) and is kept.
func Run(w io.Writer, bin string, n int, parent string) error {
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("edgepoll binary: %v (run `make build` first)", err)
	}
	if abs, err := filepath.Abs(bin); err == nil {
		bin = abs
	}
	w = syncio.NewWriter(w) // the receiver and edgepoll's stdout write at once
	api := ilerttest.New(demoKey)
	api.Push(demoKey, lifecycles(0, n)...)
	apiSrv := api.Start()
	defer apiSrv.Close()
	recv := &receiver{out: w}
	recvSrv := httptest.NewServer(recv)
	defer recvSrv.Close()

	dir, err := os.MkdirTemp(parent, "edgepoll-demo-")
	if err != nil {
		return err
	}
	state := "sqlite:" + filepath.Join(dir, "edgepoll.db")
	d := &demoRun{w: w, bin: bin, recv: recv,
		env:  []string{"ILERT_API_HOST=" + apiSrv.URL, "ILERT_EDGE_CONNECTOR_KEY=" + demoKey},
		args: []string{"--mode", "http", "--http-url", recvSrv.URL + "/webhook", "--state", state}}

	fmt.Fprintf(w, "fake ilert API on %s with %d queued alert events; receiver on %s\n", apiSrv.URL, n, recvSrv.URL)
	fmt.Fprintln(w, "(the fake API and the receiver live only as long as the demo: the edgepoll commands below show what ran;\n copied after the demo has ended they fail, as nothing listens on those ports any more)")
	steps := []struct {
		before   func()
		title    string
		wantCode int
		total    int
		what     string
	}{
		{nil, "first cycle: delivers every queued event in order", 0, n, "first cycle"},
		{nil, "second cycle: the cursor was persisted, nothing is redelivered", 0, n, "second cycle"},
		{func() {
			api.Push(demoKey, lifecycles(n, 3)...) // the same alerts' story goes on
			recv.setDown(true)
		}, "three new events arrive, but the receiver is down (503): the cycle fails (exit 1), the cursor stays before them", 1, n, "while down"},
		{func() { recv.setDown(false) }, "the receiver is back: the next cycle retries from the same place, nothing is lost", 0, n + 3, "after the retry"},
	}
	for _, st := range steps {
		if st.before != nil {
			st.before()
		}
		if err := d.run(st.title, st.wantCode); err != nil {
			return err
		}
		if got := recv.count(); got != st.total {
			return fmt.Errorf("%s: receiver has %d events, want %d", st.what, got, st.total)
		}
	}
	fmt.Fprintf(w, "\ndemo ok: %d events delivered exactly once, in order; a failed delivery was retried with nothing lost.\n", n+3)
	fmt.Fprintf(w, "The fake API and the receiver have stopped: the cycle commands above no longer work.\n")
	fmt.Fprintf(w, "The state is kept in %s. This command reads only the state file, and works now:\n  ILERT_EDGE_CONNECTOR_KEY=%s %s state show --state %s\n", dir, demoKey, bin, state)
	fmt.Fprintf(w, "and remove it with:\n  rm -r %s\n", dir)
	return nil
}

// run runs one edgepoll cycle, printing its command line, logs and exit
// code; an exit code other than wantCode is an error.
func (d *demoRun) run(title string, wantCode int) error {
	w := d.w
	fmt.Fprintf(w, "\n# %s\n$ %s %s %s\n", title, strings.Join(d.env, " "), d.bin, strings.Join(d.args, " "))
	cmd := exec.Command(d.bin, d.args...)
	cmd.Env = append(os.Environ(), d.env...)
	cmd.Stdout = w
	var logs strings.Builder
	cmd.Stderr = &logs
	err := cmd.Run()
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if l != "" {
			fmt.Fprintln(w, "  edgepoll log:", l)
		}
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		return fmt.Errorf("running edgepoll: %v", err)
	}
	fmt.Fprintf(w, "  exit code %d\n", code)
	if code != wantCode {
		return fmt.Errorf("edgepoll exited %d, want %d", code, wantCode)
	}
	return nil
}
