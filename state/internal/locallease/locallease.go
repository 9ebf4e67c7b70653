// Package locallease is the lease and hot cursor shared by the local state
// backends (sqlite, json).
//
// The lease is a kernel lock (flock) on a small per-connection file beside
// the state file; the kernel frees it when the holder dies, even by SIGKILL.
// Paths are resolved first (symlinks, ".."), so two names of one state file
// share one lock file. The lease also holds an open file description lock
// (fcntl F_OFD_SETLK, one byte per connection far beyond any data) on an
// anchor, a file the backend names by its identity (SQLite: the database
// file itself; JSON: PATH.lock): a bind mount of the state file, whose lock
// file is another file, or a lock file deleted under a run, still meets the
// holder's lock there, so two runs never deliver for one connection.
//
// The same file carries the "hot" cursor: Save writes it with one pwrite
// into the page cache, which survives the process being killed; saving
// after every item costs one pwrite and one fstat. Sync (the end of each
// batch) and Release write the cursor to the backend durably (fsync): that
// survives power loss. Load returns the larger of the two, so a run killed
// between Syncs loses nothing. (The file is not mapped: a mapping of a file
// emptied by hand is a SIGBUS crash.)
//
// The hot cursor has two checksummed slots, written alternately: a write
// torn by power loss spoils only the slot being written, and the other one
// still holds the previous cursor, so a kill costs at most one redelivered
// item. A lock file emptied under a run is written again by the next Save
// (the slot, the holder's note): the run carries on. A lock file deleted or
// replaced under a run ends its lease: the next Save fails with
// poll.ErrLeaseLost (the cycle stops; a one-shot run exits 1, a daemon's
// next cycle takes a new lease), and Release still writes the delivered
// cursor durably.
//
// The hot cursor only ever runs ahead of a durable one: the first Save of a
// connection that has no durable cursor yet writes it durably at once, and a
// hot cursor found in a lock file while the store has no cursor for the
// connection (the state file was deleted, or the cursor reset) is stale and
// thrown away. So deleting the state file, or `edgepoll state reset` /
// `set-cursor`, leaves no hidden cursor behind in a lock file.
//
// The run statistics (poll.Stats, written at the end of every cycle) live
// in the lock file too, in a checksummed record written with one pwrite: no
// fsync, so an empty cycle (nothing polled, cursor unchanged) writes
// nothing to the state file and syncs nothing. They reach the state file
// when it is written anyway: the connection's first statistics, and with
// the cursor (in the same write) whenever a cycle makes it durable. Like the hot cursor, they
// survive a process kill (page cache) and count only while the state file
// holds statistics or a cursor for the connection; a power loss may lose
// the updates since the state file was last written.
package locallease

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/state/internal/fserr"
)

// Durable is the backend below: a durable, monotonic position per
// connection, and the connection's run statistics.
type Durable interface {
	// LoadDurable returns the stored position (zero, false when none).
	LoadDurable(ctx context.Context, conn string) (poll.Position, bool, error)
	// SaveDurable stores pos if its cursor is larger than the stored one,
	// and st (when not nil) as the run statistics, in one write, and makes
	// it power-loss durable before returning.
	SaveDurable(ctx context.Context, conn string, pos poll.Position, st *poll.Stats) error
	// PutDurable stores pos whatever the stored one (an operator's rewind),
	// or with ok false forgets the position, durably.
	PutDurable(ctx context.Context, conn string, pos poll.Position, ok bool) error
	// LoadStats and SaveStats read and durably replace the run statistics.
	LoadStats(ctx context.Context, conn string) (poll.Stats, error)
	SaveStats(ctx context.Context, conn string, st poll.Stats) error
}

// recordSize is the fixed size of one hot-cursor slot; the two slots sit at
// offsets 0 and recordSize, the holder's note (for operators and the "held
// by" message) follows them at noteOffset, padded with spaces up to
// statsOffset, where the run statistics' record (statsSize) sits.
const (
	recordSize  = 64
	noteOffset  = 2 * recordSize
	statsOffset = 512
	statsSize   = 128
)

// CheckStatePath checks that a state file's directory exists and that the
// path, if present, is a regular file.
func CheckStatePath(path string) error {
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("state %s: directory %s does not exist", path, dir)
	}
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		return fmt.Errorf("state %s: not a regular file", path)
	}
	return nil
}

// Resolve returns the absolute path of a state file with every symlink
// and ".." resolved (the file's directory's, when the file does not exist
// yet), so that two names of one file are one.
func Resolve(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("state %s: %w", path, err)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real, nil
	}
	if fi, err := os.Lstat(abs); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return "", fmt.Errorf("state %s: a symlink to a file that does not exist", path)
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return "", fmt.Errorf("state %s: %w", path, fserr.Describe(path, err))
	}
	return filepath.Join(dir, filepath.Base(abs)), nil
}

// AcquireFor takes the lease on conn for the state file statePath (resolved)
// backed by d, with its anchor (see the package comment); errors other
// than poll.ErrLeaseHeld name the state file.
func AcquireFor(d Durable, statePath, anchor, conn, owner string) (poll.Lease, error) {
	l, err := Acquire(d, LockPath(statePath, conn), anchor, conn, owner)
	if err != nil && !errors.Is(err, poll.ErrLeaseHeld) {
		return nil, fmt.Errorf("state %s: %w", statePath, fserr.Describe(statePath, err))
	}
	return l, err
}

// LockPath is the per-connection lock file of a (resolved) state file,
// named by the state key: a ConnectionID (32 characters) or a fan-out
// CursorID (the hash, a dot and the connection's name: at most 96). Each
// has a lock file of its own, as the file also holds the connection's
// cursor slots.
func LockPath(statePath, conn string) string {
	if len(conn) > 96 {
		conn = conn[:96]
	}
	return statePath + ".lock-" + conn
}

// Acquire takes the lease on conn: a non-blocking flock on lockPath, and
// the connection's lock on anchor ("": none).
func Acquire(d Durable, lockPath, anchor, conn, owner string) (poll.Lease, error) {
	f, err := lockFile(lockPath)
	if err != nil {
		return nil, err
	}
	l := &lease{d: d, f: f, conn: conn, path: lockPath}
	if anchor != "" {
		if l.anchor, err = lockAnchor(anchor, conn); err != nil {
			f.Close()
			return nil, err
		}
	}
	l.hot, l.slot = readSlots(f)
	l.note = noteRecord(owner)
	if _, err := f.WriteAt(l.note, noteOffset); err != nil {
		l.unlock()
		return nil, fmt.Errorf("lease: %w", err)
	}
	return l, nil
}

// lockFile opens and flocks the lock file at path, the file the path names
// once it is locked (one deleted or replaced meanwhile is not the lease).
func lockFile(path string) (*os.File, error) {
	for range 10 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("lease: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			note := readNote(f)
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				if note != "" {
					return nil, fmt.Errorf("%w (held by %s)", poll.ErrLeaseHeld, note)
				}
				return nil, poll.ErrLeaseHeld
			}
			return nil, fmt.Errorf("lease: flock %s: %w", path, err)
		}
		if same, err := namesFile(path, f); err != nil || same {
			if err != nil {
				f.Close()
			}
			return f, err
		}
		f.Close() // deleted or replaced before it was locked: again
	}
	return nil, fmt.Errorf("lease: %s keeps being replaced", path)
}

// namesFile reports whether path names the open file f (not deleted, not
// replaced by another file).
func namesFile(path string, f *os.File) (bool, error) {
	var a, b syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &a); err != nil {
		return false, fmt.Errorf("lease: fstat %s: %w", path, err)
	}
	if err := syscall.Stat(path, &b); err != nil {
		return false, nil
	}
	return a.Nlink > 0 && a.Dev == b.Dev && a.Ino == b.Ino, nil
}

type lease struct {
	mu       sync.Mutex // Save and Sync may run concurrently
	d        Durable
	f        *os.File
	conn     string
	path     string
	hot      poll.Position // largest position saved (page cache)
	durable  int64         // largest cursor known written durably
	released bool
	anchored bool    // a durable cursor exists: the hot one may run ahead of it
	anchor   *anchor // the connection's lock on the anchor file (nil: none)
	slot     int     // the slot the next Save writes (not the newest one)
	buf      [recordSize]byte
	note     []byte // the holder's note, written again into an emptied file
	lost     error  // set once the lock file was deleted or replaced

	// Run statistics: statsAnchored once the state file holds statistics or
	// a cursor for the connection (the lock file's then count); stats the
	// latest ones, statsDirty while the state file lacks them (the next
	// durable write of the cursor carries them), statsGen counting saves.
	statsAnchored bool
	statsDirty    bool
	stats         poll.Stats
	statsGen      int
}

// noteRecord is the holder's note, padded with spaces to the statistics'
// record (a shorter note overwrites a longer one whole).
func noteRecord(owner string) []byte {
	note := fmt.Sprintf("%s pid %d since %s", owner, os.Getpid(), time.Now().UTC().Format(time.RFC3339))
	b := make([]byte, statsOffset-noteOffset)
	for i := range b {
		b[i] = ' '
	}
	copy(b[:len(b)-1], note)
	b[len(b)-1] = '\n'
	return b
}

func (l *lease) Load(ctx context.Context) (poll.Position, bool, error) {
	p, ok, err := l.d.LoadDurable(ctx, l.conn)
	if err != nil {
		return poll.Position{}, false, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.anchored = ok
	if !ok && l.hot.Cursor > 0 {
		// No durable cursor, yet a hot one: left over from a state file
		// that was deleted since. It must not resurrect.
		if err := l.clearSlots(); err != nil {
			return poll.Position{}, false, err
		}
		l.hot = poll.Position{}
	}
	if p.Cursor > l.durable {
		l.durable = p.Cursor
	}
	if l.hot.Cursor > p.Cursor {
		return l.hot, true, nil
	}
	return p, ok, nil
}

// clearSlots zeroes both hot-cursor slots and makes that durable, so that no
// copy of an older cursor survives a rewrite by the operator. Called with mu.
func (l *lease) clearSlots() error {
	if _, err := l.f.WriteAt(make([]byte, noteOffset), 0); err != nil {
		return fmt.Errorf("clearing the hot cursor in %s: %w", l.path, err)
	}
	l.slot = 0
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("clearing the hot cursor in %s: %w", l.path, err)
	}
	return nil
}

// SetCursor implements poll.CursorSetter (the refusal streak starts over).
func (l *lease) SetCursor(ctx context.Context, cursor int64) error {
	return l.put(ctx, poll.Position{Cursor: cursor}, true)
}

// ResetCursor implements poll.CursorSetter.
func (l *lease) ResetCursor(ctx context.Context) error {
	return l.put(ctx, poll.Position{}, false)
}

func (l *lease) put(ctx context.Context, pos poll.Position, ok bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return errors.New("set after the lease was released")
	}
	// Hot copy first: a crash in between leaves the old durable cursor,
	// never a hot one that outranks the operator's.
	if err := l.clearSlots(); err != nil {
		return err
	}
	if err := l.d.PutDurable(ctx, l.conn, pos, ok); err != nil {
		return err
	}
	l.hot, l.durable, l.anchored = pos, pos.Cursor, ok
	return nil
}

func (l *lease) Save(ctx context.Context, pos poll.Position) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return errors.New("save after the lease was released")
	}
	if pos.Cursor <= l.hot.Cursor {
		return nil
	}
	if !l.anchored {
		// The connection's first cursor goes to the store at once: a hot
		// cursor is trusted only next to a durable one.
		st, gen := l.pendingStats()
		if err := l.d.SaveDurable(ctx, l.conn, pos, st); err != nil {
			return err
		}
		l.statsWritten(st, gen)
		l.anchored = true
		l.durable = max(l.durable, pos.Cursor)
	}
	if err := l.check(); err != nil {
		return err
	}
	if _, err := l.f.WriteAt(appendRecord(l.buf[:0], pos), int64(l.slot*recordSize)); err != nil {
		return fmt.Errorf("saving the cursor to %s: %w", l.path, fserr.Describe(l.path, err))
	}
	l.slot ^= 1
	l.hot = pos
	return nil
}

// check fails once the lock file was deleted or replaced (the lease is
// lost: the path now names another file, which another run may lock), and
// writes the holder's note again into a lock file emptied by hand (the
// lock holds: the run carries on). Called with mu.
func (l *lease) check() error {
	if l.lost != nil {
		return l.lost
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(l.f.Fd()), &st); err != nil {
		return fmt.Errorf("lease: fstat %s: %w", l.path, err)
	}
	if st.Nlink == 0 {
		l.lost = fmt.Errorf("%w: the lock file %s was deleted or replaced under this run", poll.ErrLeaseLost, l.path)
		return l.lost
	}
	if st.Size < noteOffset+int64(len(l.note)) {
		if _, err := l.f.WriteAt(l.note, noteOffset); err != nil {
			return fmt.Errorf("lease: %w", fserr.Describe(l.path, err))
		}
	}
	return nil
}

// CheapSave implements poll.CheapSaver: Save is one pwrite into the page
// cache (and one fstat), so the cycle saves after every item.
func (l *lease) CheapSave() bool { return true }

func (l *lease) Sync(ctx context.Context) error {
	l.mu.Lock()
	hot, durable := l.hot, l.durable
	st, gen := l.pendingStats()
	l.mu.Unlock()
	if hot.Cursor <= durable {
		return nil
	}
	if err := l.d.SaveDurable(ctx, l.conn, hot, st); err != nil {
		return err
	}
	l.mu.Lock()
	if hot.Cursor > l.durable {
		l.durable = hot.Cursor
	}
	l.statsWritten(st, gen)
	l.mu.Unlock()
	return nil
}

// pendingStats returns the statistics the state file lacks (nil: none) and
// their generation, for a durable write of the cursor to carry. Called with
// mu.
func (l *lease) pendingStats() (*poll.Stats, int) {
	if !l.statsDirty {
		return nil, l.statsGen
	}
	st := l.stats
	return &st, l.statsGen
}

// statsWritten records that the statistics of generation gen reached the
// state file. Called with mu.
func (l *lease) statsWritten(st *poll.Stats, gen int) {
	if st != nil && gen == l.statsGen {
		l.statsDirty = false
	}
}

// LoadStats returns the lock file's statistics when they count (the state
// file holds statistics or a cursor for the connection), else the state
// file's.
func (l *lease) LoadStats(ctx context.Context) (poll.Stats, error) {
	st, err := l.d.LoadStats(ctx, l.conn)
	if err != nil {
		return poll.Stats{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.statsAnchored = l.anchored || !isZeroStats(st)
	if hot, ok := readStats(l.f); ok && l.statsAnchored {
		if !sameStats(hot, st) {
			l.stats, l.statsDirty = hot, true
			l.statsGen++
		}
		return hot, nil
	}
	return st, nil
}

func isZeroStats(st poll.Stats) bool { return sameStats(st, poll.Stats{}) }

func sameStats(a, b poll.Stats) bool {
	return a.Failures == b.Failures && a.LastSuccess.Equal(b.LastSuccess) && a.LastDelivery.Equal(b.LastDelivery)
}

// SaveStats writes st to the lock file (one pwrite, no fsync); the state
// file gets it when it has no statistics for the connection yet, and with
// the next durable write of the cursor.
func (l *lease) SaveStats(ctx context.Context, st poll.Stats) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return errors.New("save after the lease was released")
	}
	if err := l.check(); err != nil {
		return err
	}
	if !l.statsAnchored {
		if err := l.d.SaveStats(ctx, l.conn, st); err != nil {
			return err
		}
		l.statsAnchored = true
	} else {
		l.statsDirty = true
	}
	l.stats = st
	l.statsGen++
	if _, err := l.f.WriteAt(appendStats(make([]byte, 0, statsSize), st), statsOffset); err != nil {
		// The lock file refuses: the state file it is, durably.
		if err := l.d.SaveStats(ctx, l.conn, st); err != nil {
			return err
		}
		l.statsDirty = false
	}
	return nil
}

// Release writes an unsynced cursor durably, then unlocks.
func (l *lease) Release(ctx context.Context) error {
	if l.released {
		return nil
	}
	err := l.Sync(ctx)
	l.mu.Lock()
	l.released = true
	l.mu.Unlock()
	return errors.Join(err, l.unlock())
}

// Kill drops the lease as a killed process would: the locks go, nothing is
// written (a test hook: see state/contract's Harness.Local).
func (l *lease) Kill() {
	l.mu.Lock()
	l.released = true
	l.mu.Unlock()
	_ = l.unlock()
}

func (l *lease) unlock() error {
	l.anchor.unlock()
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	return l.f.Close()
}

// appendRecord encodes the hot position, "cursor <n> <refusals> <crc32>"
// padded to recordSize, onto b.
func appendRecord(b []byte, p poll.Position) []byte {
	b = append(b, "cursor "...)
	start := len(b)
	b = strconv.AppendInt(b, p.Cursor, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(p.Refusals), 10)
	sum := crc32.ChecksumIEEE(b[start:])
	b = append(b, ' ')
	const hex = "0123456789abcdef"
	for shift := 28; shift >= 0; shift -= 4 {
		b = append(b, hex[(sum>>uint(shift))&0xf])
	}
	for len(b) < recordSize-1 {
		b = append(b, ' ')
	}
	return append(b, '\n')
}

// appendStats encodes the run statistics, "stats <failures> <last success>
// <last delivery> <crc32>" (times in Unix nanoseconds, 0 for none) padded
// to statsSize, onto b.
func appendStats(b []byte, st poll.Stats) []byte {
	b = append(b, "stats "...)
	start := len(b)
	b = strconv.AppendInt(b, int64(st.Failures), 10)
	for _, t := range []time.Time{st.LastSuccess, st.LastDelivery} {
		b = append(b, ' ')
		b = strconv.AppendInt(b, unixNano(t), 10)
	}
	b = fmt.Appendf(b, " %08x", crc32.ChecksumIEEE(b[start:]))
	for len(b) < statsSize-1 {
		b = append(b, ' ')
	}
	return append(b, '\n')
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// readStats reads the statistics' record of a lock file; false when there is
// none or it is torn.
func readStats(f *os.File) (poll.Stats, bool) {
	b := make([]byte, statsSize)
	if n, _ := f.ReadAt(b, statsOffset); n < statsSize {
		return poll.Stats{}, false
	}
	fields := strings.Fields(string(b))
	if len(fields) != 5 || fields[0] != "stats" {
		return poll.Stats{}, false
	}
	if fmt.Sprintf("%08x", crc32.ChecksumIEEE([]byte(strings.Join(fields[1:4], " ")))) != fields[4] {
		return poll.Stats{}, false
	}
	var v [3]int64
	for i := range v {
		n, err := strconv.ParseInt(fields[i+1], 10, 64)
		if err != nil || n < 0 {
			return poll.Stats{}, false
		}
		v[i] = n
	}
	st := poll.Stats{Failures: int(v[0])}
	if v[1] != 0 {
		st.LastSuccess = time.Unix(0, v[1]).UTC()
	}
	if v[2] != 0 {
		st.LastDelivery = time.Unix(0, v[2]).UTC()
	}
	return st, true
}

// readSlots returns the newest valid position (zero if none) and the slot
// the next Save must write: the other one.
func readSlots(f *os.File) (pos poll.Position, next int) {
	b := make([]byte, noteOffset)
	n, _ := f.ReadAt(b, 0)
	newest := -1
	for i := range 2 {
		if (i+1)*recordSize > n {
			break
		}
		if p, ok := parseRecord(b[i*recordSize : (i+1)*recordSize]); ok && (newest < 0 || p.Cursor > pos.Cursor) {
			pos, newest = p, i
		}
	}
	if newest == 0 {
		return pos, 1
	}
	return pos, 0
}

// parseRecord reads a slot: "cursor <n> <refusals> <crc>", or the older
// "cursor <n> <crc>" (no refusals).
func parseRecord(b []byte) (poll.Position, bool) {
	fields := strings.Fields(string(b))
	if (len(fields) != 3 && len(fields) != 4) || fields[0] != "cursor" {
		return poll.Position{}, false
	}
	body, sum := strings.Join(fields[1:len(fields)-1], " "), fields[len(fields)-1]
	if fmt.Sprintf("%08x", crc32.ChecksumIEEE([]byte(body))) != sum {
		return poll.Position{}, false
	}
	c, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil || c < 0 {
		return poll.Position{}, false
	}
	p := poll.Position{Cursor: c}
	if len(fields) == 4 {
		r, err := strconv.Atoi(fields[2])
		if err != nil || r < 0 {
			return poll.Position{}, false
		}
		p.Refusals = r
	}
	return p, true
}

// Inspect completes info, read from a state file without the lease, with
// what lockPath shows: whether a run holds the lease (and its note), and a
// hot position ahead of the durable one (a run in progress). It takes no
// lock a run could trip over for longer than a probe, and writes nothing.
func Inspect(lockPath string, info poll.StateInfo) (poll.StateInfo, error) {
	f, err := os.Open(lockPath)
	if errors.Is(err, os.ErrNotExist) {
		return info, nil
	}
	if err != nil {
		return info, fmt.Errorf("lease: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	} else if errors.Is(err, syscall.EWOULDBLOCK) {
		info.Lease = poll.LeaseInfo{Held: true, Holder: readNote(f)}
	} else {
		return info, fmt.Errorf("lease: flock %s: %w", lockPath, err)
	}
	if hot, _ := readSlots(f); info.HasCursor && hot.Cursor > info.Cursor {
		info.Cursor, info.Refusals = hot.Cursor, hot.Refusals
	}
	return info, nil
}

func readNote(f *os.File) string {
	b := make([]byte, 160)
	n, _ := f.ReadAt(b, noteOffset)
	return strings.TrimSpace(string(b[:n]))
}
