package poll

import (
	"context"
	"slices"
	"sync"
	"time"
)

// DefaultShareFresh is how long a shared poll's answer is handed out; a
// full page (BatchLimit items after the cursor: it cannot change) is kept
// FullPageFresh.
const (
	DefaultShareFresh = 2 * time.Second
	FullPageFresh     = 15 * time.Second
)

// SharedPolls lets the connections that share one connector key (fan-out)
// share their polls: a poll for an after-id that another of them is
// polling, or polled less than Fresh ago, gets that answer (a copy of its
// items) instead of asking ilert again. Connections whose cursors differ (a
// target that is behind) poll on their own. An answer is an ordered page of
// the items after the cursor, so an older one is still a correct page: it
// is as if the connection had polled together with the other. A failed
// poll is never shared: who waited for it polls on its own. Not for HA
// (there a poll acknowledges items). Safe for concurrent use.
type SharedPolls struct {
	// Sharers is how many connections use it: an answer every one of them
	// took is dropped at once (its payloads are not held for Fresh).
	Sharers int
	// Fresh: how long an answer that is not a full page is handed out
	// (default DefaultShareFresh): a connection that takes it sees no item
	// newer than the poll it shares, so it is kept short. A full page is
	// kept FullPageFresh (or Fresh if longer): its items are fixed, and the
	// connections draining a backlog drift apart by seconds.
	Fresh time.Duration

	mu    sync.Mutex
	polls map[int64]*sharedPoll
	// asked counts the polls that reached ilert (for the fan-out figures).
	asked int
}

type sharedPoll struct {
	done  chan struct{}
	batch Batch
	err   error
	at    time.Time        // when it was answered (zero: in flight)
	taken map[*Client]bool // the connections (by client) it was handed to
}

// Asked is how many polls went to ilert through s.
func (s *SharedPolls) Asked() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.asked
}

// Held is how many answers s holds for connections still to take them.
func (s *SharedPolls) Held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.polls)
}

// Poll answers q for a connection polling with c: shared when it can be.
func (s *SharedPolls) Poll(ctx context.Context, c *Client, q Query) (Batch, error) {
	if s == nil || q.ClusterID != "" {
		return c.Poll(ctx, q)
	}
	s.mu.Lock()
	if p := s.polls[q.AfterID]; p != nil && s.stale(p, time.Now()) {
		s.drop(q.AfterID, p) // its timer has not run yet
	}
	if p := s.polls[q.AfterID]; p != nil {
		s.mu.Unlock()
		select {
		case <-p.done:
		case <-ctx.Done():
			return Batch{}, &PollError{Reason: string(ReasonCanceled), Err: ctx.Err()}
		}
		if b, ok := s.take(c, q.AfterID, p); ok {
			return b, nil
		}
		return s.pollAlone(ctx, c, q)
	}
	p := &sharedPoll{done: make(chan struct{}), taken: map[*Client]bool{}}
	if s.polls == nil {
		s.polls = map[int64]*sharedPoll{}
	}
	s.polls[q.AfterID] = p
	s.asked++
	s.mu.Unlock()

	b, err := c.Poll(ctx, q)
	s.mu.Lock()
	p.batch, p.err, p.at = b, err, time.Now()
	if err != nil {
		s.drop(q.AfterID, p) // a failure is this connection's own
	} else {
		// Dropped when it is no longer fresh, so that its payloads are not
		// held for a connection that does not come (its target is behind).
		time.AfterFunc(s.keep(b.Full), func() {
			s.mu.Lock()
			s.drop(q.AfterID, p)
			s.mu.Unlock()
		})
	}
	s.mu.Unlock()
	close(p.done)
	if err != nil {
		return b, err
	}
	b, _ = s.take(c, q.AfterID, p)
	return b, nil
}

// pollAlone polls for one connection without sharing (after a shared poll
// it waited for failed).
func (s *SharedPolls) pollAlone(ctx context.Context, c *Client, q Query) (Batch, error) {
	s.mu.Lock()
	s.asked++
	s.mu.Unlock()
	return c.Poll(ctx, q)
}

// take hands out a copy of p's answer (the cycle releases payloads in its
// own slice as it delivers); false when p failed.
func (s *SharedPolls) take(c *Client, after int64, p *sharedPoll) (Batch, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.err != nil {
		return Batch{}, false
	}
	p.taken[c] = true // a connection may take it twice (a discarded prefetch)
	if len(p.taken) >= s.Sharers {
		s.drop(after, p)
	}
	b := p.batch
	b.Items = slices.Clone(b.Items)
	return b, true
}

// keep is how long an answer is handed out (see Fresh).
func (s *SharedPolls) keep(full bool) time.Duration {
	fresh := s.Fresh
	if fresh <= 0 {
		fresh = DefaultShareFresh
	}
	if full {
		return max(fresh, FullPageFresh)
	}
	return fresh
}

// stale reports whether the answer p is no longer handed out at now.
func (s *SharedPolls) stale(p *sharedPoll, now time.Time) bool {
	return !p.at.IsZero() && now.Sub(p.at) > s.keep(p.batch.Full)
}

// drop forgets p, the answer after after, unless a newer poll replaced it;
// s.mu is held.
func (s *SharedPolls) drop(after int64, p *sharedPoll) {
	if s.polls[after] == p {
		delete(s.polls, after)
	}
}
