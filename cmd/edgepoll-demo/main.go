// Command edgepoll-demo shows edgepoll end to end on one machine: it starts
// an embedded fake ilert API seeded with realistic alert events and a local
// HTTP receiver that prints what it gets, then runs the real edgepoll binary
// twice (one poll cycle each) to show in-order delivery and the persisted
// cursor (nothing redelivered). `make demo` runs it.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/edgepoll/edgepoll/poll/ilerttest"
)

const demoKey = "iec1-demo-connector-key"

func main() {
	bin := flag.String("bin", "bin/edgepoll", "edgepoll binary to run")
	events := flag.Int("events", 12, "alert events to seed")
	flag.Parse()
	if err := demo(*bin, *events); err != nil {
		fmt.Fprintf(os.Stderr, "demo failed: %v\n", err)
		os.Exit(1)
	}
}

type receiver struct {
	mu  sync.Mutex
	ids []string
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var p struct {
		ID, EventType, Summary, Status string
	}
	_ = json.Unmarshal(body, &p)
	r.mu.Lock()
	r.ids = append(r.ids, req.Header.Get("X-ilert-Edge-Item-Id"))
	r.mu.Unlock()
	fmt.Printf("  receiver <- item %-3s %-19s alert %-5s %-8s %q\n",
		req.Header.Get("X-ilert-Edge-Item-Id"), req.Header.Get("X-ilert-Event-Type"), p.ID, p.Status, p.Summary)
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ids)
}

func demo(bin string, n int) error {
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("edgepoll binary: %v (run `make build` first)", err)
	}
	api := ilerttest.New(demoKey)
	api.Push(demoKey, ilerttest.AlertEvents(n)...)
	apiSrv := api.Start()
	defer apiSrv.Close()
	recv := &receiver{}
	recvSrv := httptest.NewServer(recv)
	defer recvSrv.Close()

	dir, err := os.MkdirTemp("", "edgepoll-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	state := "sqlite:" + filepath.Join(dir, "edgepoll.db")

	run := func(title string) error {
		fmt.Printf("\n$ edgepoll --mode http --http-url %s/webhook --state %s   # %s\n", recvSrv.URL, state, title)
		cmd := exec.Command(bin, "--mode", "http", "--http-url", recvSrv.URL+"/webhook", "--state", state)
		cmd.Env = append(os.Environ(), "ILERT_API_HOST="+apiSrv.URL, "ILERT_EDGE_CONNECTOR_KEY="+demoKey)
		cmd.Stdout = os.Stdout
		var logs strings.Builder
		cmd.Stderr = &logs
		err := cmd.Run()
		for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			if l != "" {
				fmt.Println("  edgepoll log:", l)
			}
		}
		if err != nil {
			return fmt.Errorf("edgepoll exited: %v", err)
		}
		fmt.Println("  exit code 0")
		return nil
	}

	fmt.Printf("fake ilert API on %s with %d queued alert events; receiver on %s\n", apiSrv.URL, n, recvSrv.URL)
	if err := run("first cycle: delivers every queued event in order"); err != nil {
		return err
	}
	if got := recv.count(); got != n {
		return fmt.Errorf("receiver got %d events, want %d", got, n)
	}
	if err := run("second cycle: the cursor was persisted, nothing is redelivered"); err != nil {
		return err
	}
	if got := recv.count(); got != n {
		return fmt.Errorf("second cycle redelivered: receiver has %d events, want %d", got, n)
	}
	api.Push(demoKey, ilerttest.AlertEvents(3)...)
	if err := run("three new events arrive: only they are delivered"); err != nil {
		return err
	}
	if got := recv.count(); got != n+3 {
		return fmt.Errorf("receiver got %d events, want %d", got, n+3)
	}
	fmt.Printf("\ndemo ok: %d events delivered exactly once, in order; cursor persisted in %s\n", n+3, state)
	return nil
}
