package script

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// GuardEnv, set in the environment of a process, makes GuardMain run the
// guard there.
const GuardEnv = "EDGEPOLL_INTERNAL_SCRIPT_GUARD"

// A script must never outlive edgepoll: an item still being handled by an
// orphaned script after the next run delivered the following ones breaks
// the order. The script itself gets SIGKILL when edgepoll dies (parent-death
// signal), but its own children do not. So each sink starts one guard
// process for its lifetime: edgepoll tells it, over a pipe, the process
// group of every running script ("+PGID" when it starts, "-PGID" once it is
// gone); when the pipe closes (edgepoll exited or died: SIGKILL, os.Exit, a
// crash), the guard kills every group still listed, then exits.

// GuardMain runs the guard if this process was started as one (GuardEnv
// set) and then exits; otherwise it returns at once. edgepoll's main and the
// package's TestMain call it first.
func GuardMain() {
	if os.Getenv(GuardEnv) == "" {
		return
	}
	// Signals meant for edgepoll (a terminal's Ctrl-C, a service manager's
	// SIGTERM) must not end the guard before edgepoll has gone.
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	os.Exit(guard1(os.Stdin, MarkerEnv+"="+os.Getenv(GuardEnv)))
}

// guard1 reads the protocol from r until EOF and kills the groups left,
// then every process that carries marker in its environment (a script's
// child that left the group with setsid, now an orphan).
func guard1(r io.Reader, marker string) int {
	groups := map[int]bool{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		pgid, err := strconv.Atoi(strings.TrimLeft(line, "+-"))
		if err != nil || pgid <= 1 {
			continue
		}
		if strings.HasPrefix(line, "-") {
			delete(groups, pgid)
		} else {
			groups[pgid] = true
		}
	}
	for pgid := range groups {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	killMarked(marker)
	return 0
}

// guard is the sink's end of the guard process; it also keeps the groups
// of the running scripts itself, so Close can kill them. Without a guard
// process (none could be started) the parent-death signal still kills the
// script itself.
type guard struct {
	mu     sync.Mutex
	w      io.WriteCloser // nil: no guard process
	cmd    *exec.Cmd
	active map[int]bool
	log    *slog.Logger
	warned bool
}

func startGuard(cmdline []string, token string, log *slog.Logger) *guard {
	g := &guard{active: map[int]bool{}, log: log}
	if len(cmdline) == 0 {
		exe, err := os.Executable()
		if err != nil {
			log.Warn("no script guard: a script's children could outlive a killed edgepoll", "err", err)
			return g
		}
		cmdline = []string{exe}
	}
	cmd := exec.Command(cmdline[0], cmdline[1:]...)
	cmd.Env = []string{GuardEnv + "=" + token} // nothing else: no secret in its environment
	// Its own process group: a Ctrl-C to edgepoll's group does not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	w, err := cmd.StdinPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		log.Warn("no script guard: a script's children could outlive a killed edgepoll", "err", err)
		return g
	}
	g.w, g.cmd = w, cmd
	return g
}

func (g *guard) send(line string) {
	if g.w == nil {
		return
	}
	if _, err := io.WriteString(g.w, line+"\n"); err != nil && !g.warned {
		g.warned = true
		g.log.Warn("the script guard is gone: a script's children could outlive a killed edgepoll", "err", err)
	}
}

func (g *guard) watch(pgid int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.active[pgid] = true
	g.send(fmt.Sprintf("+%d", pgid))
}

func (g *guard) forget(pgid int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.active, pgid)
	g.send(fmt.Sprintf("-%d", pgid))
}

// close kills the groups of scripts still running, then ends the guard
// process and reaps it.
func (g *guard) close() {
	g.mu.Lock()
	for pgid := range g.active {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		delete(g.active, pgid)
		g.send(fmt.Sprintf("-%d", pgid))
	}
	w := g.w
	g.w = nil
	g.mu.Unlock()
	if w != nil {
		_ = w.Close()
		// The guard exits on EOF; should it not (a process that inherited
		// the pipe against all odds), Close still returns: the groups it
		// watched were killed above.
		done := make(chan struct{})
		go func() { _ = g.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = g.cmd.Process.Kill()
			<-done
		}
	}
}
