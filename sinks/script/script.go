// Package script is the script sink: one run of an executable per event,
// the payload on stdin, the metadata in environment variables.
package script

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/sinks"
)

// Config configures the script sink.
type Config struct {
	// Path of the executable. Required: a regular, executable file. It is
	// run directly, not through a shell.
	Path string
	// Timeout bounds one run, including writing stdin. On expiry the whole
	// process group (grandchildren too) is killed and the delivery is
	// retried. Default 30s, as in the reference agent.
	Timeout time.Duration
	// MaxOutput caps how much of the script's stdout and stderr is kept for
	// the log. Default 4 KiB.
	MaxOutput int
	// Guard is the command line of the guard process that kills the
	// script's process group should edgepoll die (SIGKILL, os.Exit); see
	// GuardMain. Default: this executable with GuardEnv set, which works
	// when main (or TestMain) calls GuardMain first.
	Guard []string
	// Secrets are values the script must not see: a variable of edgepoll's
	// environment whose value is one of them is not passed on, whatever
	// its name (edgepoll gives every secret it holds).
	Secrets []string
	// PassEnv names AWS credential variables that are nevertheless handed
	// to the script (--script-env): without it none reaches a script.
	PassEnv []string
}

// stderrTail is how much of a failed script's stderr its error carries.
const stderrTail = 512

// Sink runs the script once per event. It implements poll.Deliverer.
type Sink struct {
	cfg    Config
	env    []string
	log    *slog.Logger
	guard  *guard
	marker string // MarkerEnv=token: every process of this sink's scripts carries it
}

// New validates cfg (check, the same rules as Options.Validate) and builds
// the sink.
func New(cfg Config, log *slog.Logger) (*Sink, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.MaxOutput <= 0 {
		cfg.MaxOutput = 4 << 10
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	token := newToken()
	s := &Sink{cfg: cfg, env: scrubEnv(os.Environ(), cfg.Secrets, cfg.PassEnv), log: log, marker: MarkerEnv + "=" + token}
	if err := becomeSubreaper(); err != nil {
		log.Warn("not a child subreaper: a script's child that leaves its session (setsid) is found by its environment only", "err", err)
	}
	s.guard = startGuard(cfg.Guard, token, log)
	return s, nil
}

// Deliver runs the script for ev. Exit 0: delivered. Any other exit status
// ("exit_status"), a signal ("signal"), the timeout ("timeout") or a failure
// to start ("start"): retryable.
func (s *Sink) Deliver(ctx context.Context, ev poll.Event) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()

	r, err := s.start(ev)
	if err != nil {
		return err
	}
	waitErr, timedOut := s.wait(ctx, r, ev.Payload)
	if r.out.Len() > 0 {
		s.log.Debug("script output", "item", ev.ID, "output", r.out.String(), "truncated", r.out.truncated)
	}
	return s.outcome(ctx, waitErr, timedOut, r.errTail)
}

// scriptRun is one started run of the script.
type scriptRun struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	out     *capped
	errTail *tail
	pgid    int
}

// start starts the script for ev in its own process group, watched by the
// guard.
func (s *Sink) start(ev poll.Event) (*scriptRun, error) {
	cmd := exec.Command(s.cfg.Path)
	cmd.Env = append(append([]string{}, s.env...),
		"ILERT_EVENT_TYPE="+ev.EventType,
		"ILERT_ALERT_ID="+ev.AlertID,
		"ILERT_EDGE_ITEM_ID="+ev.ItemID(),
		"ILERT_TIMESTAMP="+ev.Timestamp,
		s.marker,
	)
	// Its own process group (killed as a whole on every exit path), and
	// SIGKILL should edgepoll die; the guard kills the rest of the group
	// (the script's children) then.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	r := &scriptRun{cmd: cmd, out: &capped{max: s.cfg.MaxOutput}, errTail: &tail{max: stderrTail}}
	cmd.Stdout, cmd.Stderr = r.out, io.MultiWriter(r.out, r.errTail)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, poll.Retryable("start", err)
	}
	r.stdin = stdin
	// With a non-*os.File Stdout, exec copies output in goroutines and Wait
	// waits for them; a grandchild holding the pipe open would block Wait.
	// WaitDelay bounds that after the process exits or is killed.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return nil, poll.Retryable("start", fmt.Errorf("starting %s: %v", s.cfg.Path, errors.Unwrap(err)))
	}
	r.pgid = cmd.Process.Pid
	s.guard.watch(r.pgid)
	return r, nil
}

// wait writes payload to the run's stdin and waits for it to exit, killing
// its process group when ctx ends (timedOut). Whatever the outcome, no
// process of the run outlives it.
func (s *Sink) wait(ctx context.Context, r *scriptRun, payload []byte) (waitErr error, timedOut bool) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // stdin writes are bounded by the kill below
		defer wg.Done()
		_, _ = r.stdin.Write(payload)
		_ = r.stdin.Close()
	}()
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()

	select {
	case waitErr = <-done:
	case <-ctx.Done():
		timedOut = true
		_ = syscall.Kill(-r.pgid, syscall.SIGKILL)
		waitErr = <-done
	}
	// Whatever the outcome, no process of this run outlives it: its group,
	// then whatever left the group (setsid) and was handed to us.
	_ = syscall.Kill(-r.pgid, syscall.SIGKILL)
	sweepChildren(s.marker)
	s.guard.forget(r.pgid)
	_ = r.stdin.Close()
	wg.Wait()
	return waitErr, timedOut
}

// outcome classifies a finished run: nil when delivered, else a retryable
// error naming its reason.
func (s *Sink) outcome(ctx context.Context, waitErr error, timedOut bool, errTail *tail) error {
	var ee *exec.ExitError
	switch {
	case timedOut && ctx.Err() == context.DeadlineExceeded:
		return poll.Retryable("timeout", fmt.Errorf("script timed out after %s; process group killed", s.cfg.Timeout))
	case timedOut:
		return poll.Retryable("canceled", ctx.Err())
	case waitErr == nil:
		return nil
	case errors.As(waitErr, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return poll.Retryable("signal", fmt.Errorf("script killed by signal %s%s", ws.Signal(), errTail.suffix()))
		}
		return poll.Retryable("exit_status", fmt.Errorf("script exited with status %d%s", ee.ExitCode(), errTail.suffix()))
	case errors.Is(waitErr, exec.ErrWaitDelay):
		return nil // exited 0; a leftover grandchild held the output open and was killed
	default:
		return poll.Retryable("wait", waitErr)
	}
}

// Close implements poll.Deliverer: it ends the guard (after killing any
// script group still running).
func (s *Sink) Close() error {
	s.guard.close()
	sweepChildren(s.marker)
	return nil
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
	max int
	cut bool
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.cut = true
	}
	return len(p), nil
}

// suffix is "; stderr: ..." with the tail quoted (control characters
// escaped), or "" when the script wrote nothing to stderr.
func (t *tail) suffix() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := bytes.TrimSpace(t.buf)
	if len(b) == 0 {
		return ""
	}
	if t.cut {
		return "; stderr (last " + strconv.Itoa(t.max) + " bytes): " + strconv.Quote(string(b))
	}
	return "; stderr: " + strconv.Quote(string(b))
}

// capped keeps the first max bytes written to it.
type capped struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	max       int
	truncated bool
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	room := c.max - c.buf.Len()
	if room < len(p) {
		c.truncated = true
		if room > 0 {
			c.buf.Write(p[:room])
		}
		return len(p), nil
	}
	c.buf.Write(p)
	return len(p), nil
}

func (c *capped) Len() int       { c.mu.Lock(); defer c.mu.Unlock(); return c.buf.Len() }
func (c *capped) String() string { c.mu.Lock(); defer c.mu.Unlock(); return c.buf.String() }

// executable checks that path is a regular, executable file.
func executable(path string) error {
	st, err := os.Stat(path)
	switch {
	case err != nil:
		return sinks.ShortPathErr(err)
	case !st.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file", path)
	case st.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("%s is not executable", path)
	}
	return nil
}

// Check implements poll.Checker: the script still exists and is executable
// (it is not run).
func (s *Sink) Check(context.Context) (string, error) {
	if err := executable(s.cfg.Path); err != nil {
		return "", err
	}
	return s.cfg.Path + " is executable", nil
}
