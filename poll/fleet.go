package poll

import (
	"context"
	"sync"
	"time"
)

// DefaultMaxParallel is how many connections of a fleet run a cycle at the
// same time unless configured otherwise (--max-parallel).
const DefaultMaxParallel = 4

// FleetMember is one connection of a fleet: its name and its cycle. The
// fleet adds no delivery path of its own; it runs each member's Cycle.
type FleetMember struct {
	Name  string
	Cycle *Cycle
	// Invocation is passed to the member's cycle.
	Invocation Invocation
	// Open, if set, runs in the member's worker right before its cycle (to
	// build the sink, or the whole connection, on demand) and returns the
	// cycle to run (nil: Cycle). An error fails this member's cycle only,
	// as a CycleError of KindOpen.
	Open func(ctx context.Context) (*Cycle, error)
}

// FleetResult is what one member's cycle did.
type FleetResult struct {
	Name    string
	Summary Summary
	Err     error
	Took    time.Duration
}

// Slots bounds how many cycles run at once across a fleet. The zero value
// (nil) does not bound anything.
type Slots chan struct{}

// NewSlots returns room for n concurrent cycles (n < 1: one).
func NewSlots(n int) Slots {
	if n < 1 {
		n = 1
	}
	return make(Slots, n)
}

// Take waits for a free slot; false when ctx ended first.
func (s Slots) Take(ctx context.Context) bool {
	if s == nil {
		return ctx.Err() == nil
	}
	select {
	case s <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// Put frees a slot taken with Take.
func (s Slots) Put() {
	if s != nil {
		<-s
	}
}

// RunFleetOnce runs one cycle for every member, at most maxParallel at once,
// and returns the results in member order. A member's failure (its poll,
// sink, target or state) is its own: it never delays or stops the others.
// When soft is done no further member starts (those are reported as
// Stopped); hard aborts in-flight deliveries, as for Cycle.RunUntil.
// done, if set, is called in the member's worker as soon as its cycle ended
// (heartbeat, logs); calls may be concurrent.
func RunFleetOnce(soft, hard context.Context, members []FleetMember, maxParallel int, done func(i int, r FleetResult)) []FleetResult {
	if maxParallel < 1 {
		maxParallel = DefaultMaxParallel
	}
	results := make([]FleetResult, len(members))
	jobs := make(chan int)
	var wg sync.WaitGroup
	workers := min(maxParallel, len(members))
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				results[i] = runMember(soft, hard, members[i])
				if done != nil {
					done(i, results[i])
				}
			}
		}()
	}
	for i := range members {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return results
}

func runMember(soft, hard context.Context, m FleetMember) (r FleetResult) {
	r.Name = m.Name
	start := time.Now()
	defer func() { r.Took = time.Since(start) }()
	if soft.Err() != nil {
		r.Summary.Stopped = true
		return r
	}
	cycle := m.Cycle
	if m.Open != nil {
		c, err := m.Open(hard)
		if err != nil {
			r.Err = &CycleError{Kind: KindOpen, Reason: ReasonOpen, Err: err}
			return r
		}
		if c != nil {
			cycle = c
		}
	}
	r.Summary, r.Err = cycle.RunUntil(soft, hard, m.Invocation)
	return r
}
