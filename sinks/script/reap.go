package script

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MarkerEnv is set in every script's environment to a token of its sink;
// every process the script starts inherits it, also one that leaves the
// script's process group and session (setsid). edgepoll and the guard find
// a script's leftover processes by it.
const MarkerEnv = "EDGEPOLL_SCRIPT_RUN"

// A script's child that calls setsid leaves the script's process group, so
// killing the group misses it. Two mechanisms catch it:
//
//   - edgepoll is a child subreaper (Linux PR_SET_CHILD_SUBREAPER): when
//     the script exits, its orphans become edgepoll's children, not init's.
//     After every run (and in Close) edgepoll kills and reaps its children
//     that carry the sink's marker, until none is left (their own children
//     are handed to edgepoll in turn); zombies no process waits for are
//     reaped too.
//   - should edgepoll die (SIGKILL), its orphans go to init: the guard kills
//     every process that carries the marker, wherever it is.
//
// A descendant that also clears its environment (env -i) is not found by
// the marker; it is the one case left to the operator.

func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var subreaper struct {
	once sync.Once
	err  error
}

// becomeSubreaper makes this process a child subreaper, once.
func becomeSubreaper() error {
	subreaper.once.Do(func() {
		const prSetChildSubreaper = 36
		if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); e != 0 {
			subreaper.err = e
		}
	})
	return subreaper.err
}

// procStat is what sweeping needs of /proc/PID/stat.
type procStat struct {
	state     byte
	starttime string
}

func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	i := bytes.LastIndexByte(b, ')') // the command name may hold spaces and parentheses
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state), f[19] field 22 (starttime)
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, false
	}
	return procStat{state: f[0][0], starttime: f[19]}, true
}

// hasMarker reports whether pid's environment holds marker (a zombie's is
// gone: false).
func hasMarker(pid int, marker string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if string(kv) == marker {
			return true
		}
	}
	return false
}

// children lists this process's children (of every thread).
func children() []int {
	var pids []int
	tasks, _ := filepath.Glob("/proc/self/task/*/children")
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// zombies remembers the zombie children seen by a sweep that nobody
// reaped: one still there a second later has no goroutine waiting for it
// (os/exec reaps its own children at once), so it is an adopted orphan
// that exited before a sweep could kill it, and is reaped.
var zombies = struct {
	sync.Mutex
	seen map[int]zombie
}{seen: map[int]zombie{}}

type zombie struct {
	starttime string
	at        time.Time
}

// sweepChildren kills and reaps this process's children that carry marker,
// and reaps the lasting zombies, until a pass finds nothing to kill.
func sweepChildren(marker string) {
	for pass := 0; pass < 100; pass++ {
		killed := false
		for _, pid := range children() {
			st, ok := readStat(pid)
			switch {
			case !ok:
			case st.state == 'Z':
				reapLasting(pid, st.starttime)
			case hasMarker(pid, marker):
				_ = syscall.Kill(pid, syscall.SIGKILL)
				var ws syscall.WaitStatus
				_, _ = syscall.Wait4(pid, &ws, 0, nil)
				killed = true
			}
		}
		if !killed {
			return
		}
	}
}

func reapLasting(pid int, starttime string) {
	zombies.Lock()
	defer zombies.Unlock()
	z, ok := zombies.seen[pid]
	if !ok || z.starttime != starttime {
		zombies.seen[pid] = zombie{starttime: starttime, at: time.Now()}
		return
	}
	if time.Since(z.at) < time.Second {
		return
	}
	var ws syscall.WaitStatus
	_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
	delete(zombies.seen, pid)
}

// killMarked kills every process (of any parent) that carries marker, until
// a scan of /proc finds none: the guard's last act once edgepoll is gone.
func killMarked(marker string) {
	self := os.Getpid()
	for pass := 0; pass < 100; pass++ {
		found := false
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == self || !hasMarker(pid, marker) {
				continue
			}
			_ = syscall.Kill(pid, syscall.SIGKILL)
			found = true
		}
		if !found {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
