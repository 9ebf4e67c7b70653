// Package jsonfile is the JSON-file state backend (--state json:PATH): a
// small, human-readable file holding one cursor per connection:
//
//	{"version":1,"cursors":{"<connection hash>":{"cursor":42,"refusals":0,"updated_at":"..."}},
//	 "stats":{"<connection hash>":{"failures":0,"last_success":"...","last_delivery":"..."}}}
//
// Lease and per-item saves: see state/internal/locallease — kernel locks on
// PATH.lock-<connection hash> (PATH resolved: symlinks, "..") and on
// PATH.lock, freed when the holder dies; the lock file also carries the hot
// cursor (one pwrite per item, survives a process kill).
// Sync, at the end of each batch, rewrites the JSON file atomically: a temp
// file in the same directory, fsync, rename over the old file, fsync the
// directory; it survives power loss and is never torn. A corrupt or
// unreadable file is an error, never a silent reset to 0.
//
// Several connections (and processes) can share one file: each durable write
// is a read-modify-write under a short whole-file lock (PATH.lock).
package jsonfile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/state"
	"github.com/edgepoll/edgepoll/state/internal/filelock"
	"github.com/edgepoll/edgepoll/state/internal/fserr"
	"github.com/edgepoll/edgepoll/state/internal/locallease"
)

const fileVersion = 1

type entry struct {
	Cursor    int64  `json:"cursor"`
	Refusals  int    `json:"refusals,omitempty"`
	UpdatedAt string `json:"updated_at"`
}

type stats struct {
	Failures     int       `json:"failures"`
	LastSuccess  time.Time `json:"last_success,omitzero"`
	LastDelivery time.Time `json:"last_delivery,omitzero"`
}

type file struct {
	Version int              `json:"version"`
	Cursors map[string]entry `json:"cursors"`
	Stats   map[string]stats `json:"stats,omitempty"`
}

// Store is a JSON-file poll.Store.
type Store struct {
	path string // as given, for messages
	real string // resolved (symlinks, ".."): the file every name of it shares
	log  *slog.Logger
}

// Backend registers --state json:PATH.
var Backend = state.Backend{Scheme: "json", Form: "json:PATH",
	Local: true, Exists: state.FileExists,
	Validate: func(path string) error {
		if path == "" {
			return errors.New("json: needs a file path")
		}
		return nil
	},
	Open: func(ctx context.Context, path string, log *slog.Logger) (poll.Store, error) {
		return Open(ctx, path, log)
	}}

// Open checks that path is usable: its directory exists, and the file, if
// present, parses. Temp files a killed run left behind are removed.
func Open(ctx context.Context, path string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := locallease.CheckStatePath(path); err != nil {
		return nil, err
	}
	real, err := locallease.Resolve(path)
	if err != nil {
		return nil, err
	}
	s := &Store{path: path, real: real, log: log}
	if _, err := s.read(); err != nil {
		return nil, err
	}
	s.removeStaleTemps(ctx)
	return s, nil
}

// tmpPattern names the temp files of update (os.CreateTemp's pattern).
func (s *Store) tmpPattern() string { return "." + filepath.Base(s.real) + ".tmp-*" }

// temps lists the temp files of update in the state file's directory.
func (s *Store) temps() []string {
	dir := filepath.Dir(s.real)
	entries, _ := os.ReadDir(dir)
	prefix := strings.TrimSuffix(s.tmpPattern(), "*")
	var out []string
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasPrefix(e.Name(), prefix) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}

// removeStaleTemps removes the temp files of runs killed in the middle of
// an update. Every update creates and renames (or removes) its temp file
// under the file lock, so with the lock held any temp file left is stale;
// without the lock (held elsewhere for longer than a moment) nothing is
// touched: a later Open cleans up.
func (s *Store) removeStaleTemps(ctx context.Context) {
	if len(s.temps()) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	lk, err := filelock.AcquireContext(ctx, s.real+".lock")
	if err != nil {
		return
	}
	defer lk.Unlock()
	for _, p := range s.temps() {
		if err := os.Remove(p); err == nil {
			s.log.Info("removed the temp file of an interrupted state write", "file", p)
		}
	}
}

// read parses the file; an absent file is empty state.
func (s *Store) read() (*file, error) {
	b, err := os.ReadFile(s.real)
	if errors.Is(err, os.ErrNotExist) {
		return &file{Version: fileVersion, Cursors: map[string]entry{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state %s: %v", s.path, s.unwrapPath(err))
	}
	var f file
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("state %s: corrupt state file (%v); fix or remove it deliberately — edgepoll will not reset the cursor", s.path, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("state %s: corrupt state file (trailing data)", s.path)
	}
	if f.Version != fileVersion {
		return nil, fmt.Errorf("state %s: unsupported version %d (want %d)", s.path, f.Version, fileVersion)
	}
	if f.Cursors == nil {
		f.Cursors = map[string]entry{}
	}
	for conn, e := range f.Cursors {
		if e.Cursor < 0 || e.Refusals < 0 {
			return nil, fmt.Errorf("state %s: corrupt state file (the cursor of connection %s is %d, refusals %d: below 0); "+
				"fix or remove it deliberately — edgepoll will not reset the cursor", s.path, conn, e.Cursor, e.Refusals)
		}
	}
	return &f, nil
}

// unwrapPath is err without the path (the message names the state file
// already), a storage failure named as such (disk full, ...).
func (s *Store) unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fserr.Describe(s.real, pe.Err)
	}
	return fserr.Describe(s.real, err)
}

// Acquire takes the connection's lease (a kernel lock).
func (s *Store) Acquire(_ context.Context, conn, owner string) (poll.Lease, error) {
	return locallease.AcquireFor(s, s.real, s.real+".lock", conn, owner)
}

// Close implements poll.Store.
func (s *Store) Close() error { return nil }

// LoadDurable implements locallease.Durable.
func (s *Store) LoadDurable(_ context.Context, conn string) (poll.Position, bool, error) {
	f, err := s.read()
	if err != nil {
		return poll.Position{}, false, err
	}
	e, ok := f.Cursors[conn]
	return poll.Position{Cursor: e.Cursor, Refusals: e.Refusals}, ok, nil
}

// SaveDurable implements locallease.Durable: the cursor if it is larger,
// and st, in one rewrite.
func (s *Store) SaveDurable(ctx context.Context, conn string, p poll.Position, st *poll.Stats) error {
	return s.update(ctx, func(f *file) bool {
		if st != nil {
			setStats(f, conn, *st)
		}
		if e, ok := f.Cursors[conn]; ok && e.Cursor >= p.Cursor {
			return st != nil
		}
		f.Cursors[conn] = entry{Cursor: p.Cursor, Refusals: p.Refusals, UpdatedAt: time.Now().UTC().Format(time.RFC3339Nano)}
		return true
	})
}

// LoadStats implements locallease.Durable.
func (s *Store) LoadStats(_ context.Context, conn string) (poll.Stats, error) {
	f, err := s.read()
	if err != nil {
		return poll.Stats{}, err
	}
	st := f.Stats[conn]
	return poll.Stats{Failures: st.Failures, LastSuccess: st.LastSuccess, LastDelivery: st.LastDelivery}, nil
}

// SaveStats implements locallease.Durable.
func (s *Store) SaveStats(ctx context.Context, conn string, st poll.Stats) error {
	return s.update(ctx, func(f *file) bool {
		setStats(f, conn, st)
		return true
	})
}

func setStats(f *file, conn string, st poll.Stats) {
	if f.Stats == nil {
		f.Stats = map[string]stats{}
	}
	f.Stats[conn] = stats{Failures: st.Failures, LastSuccess: st.LastSuccess.UTC(), LastDelivery: st.LastDelivery.UTC()}
}

// PutDurable implements locallease.Durable: the operator's rewrite, any
// position (or none).
func (s *Store) PutDurable(ctx context.Context, conn string, p poll.Position, ok bool) error {
	return s.update(ctx, func(f *file) bool {
		if !ok {
			_, had := f.Cursors[conn]
			delete(f.Cursors, conn)
			return had
		}
		f.Cursors[conn] = entry{Cursor: p.Cursor, Refusals: p.Refusals, UpdatedAt: time.Now().UTC().Format(time.RFC3339Nano)}
		return true
	})
}

// Inspect implements poll.Inspector: the stored cursor and when it was
// written, completed from the lock file (lease holder, a run's hot cursor).
func (s *Store) Inspect(_ context.Context, conn string) (poll.StateInfo, error) {
	var info poll.StateInfo
	f, err := s.read()
	if err != nil {
		return info, err
	}
	if e, ok := f.Cursors[conn]; ok {
		info.HasCursor, info.Cursor, info.Refusals = true, e.Cursor, e.Refusals
		info.UpdatedAt, _ = time.Parse(time.RFC3339Nano, e.UpdatedAt)
	}
	info, err = locallease.Inspect(locallease.LockPath(s.real, conn), info)
	if err != nil {
		return info, fmt.Errorf("state %s: %w", s.path, err)
	}
	return info, nil
}

// update does a read-modify-write of the whole file under the file lock and
// replaces it atomically (temp file + rename) when change reports a change.
// Waiting for the file lock ends when ctx is done.
func (s *Store) update(ctx context.Context, change func(*file) bool) error {
	lk, err := filelock.AcquireContext(ctx, s.real+".lock")
	if err != nil {
		return fmt.Errorf("state %s: %w", s.path, fserr.Describe(s.real, err))
	}
	defer lk.Unlock()
	f, err := s.read()
	if err != nil {
		return err
	}
	if !change(f) {
		return nil
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("state %s: %v", s.path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.real), s.tmpPattern())
	if err != nil {
		return fmt.Errorf("state %s: %v", s.path, s.unwrapPath(err))
	}
	_, werr := tmp.Write(append(b, '\n'))
	serr := tmp.Sync()
	cerr := tmp.Close()
	if werr != nil || serr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("state %s: writing: %v", s.path, s.unwrapPath(errors.Join(werr, serr, cerr)))
	}
	if err := os.Rename(tmp.Name(), s.real); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("state %s: %v", s.path, s.unwrapPath(err))
	}
	dir, err := os.Open(filepath.Dir(s.real))
	if err != nil {
		return fmt.Errorf("state %s: %v", s.path, s.unwrapPath(err))
	}
	defer dir.Close()
	if err := dir.Sync(); err != nil {
		return fmt.Errorf("state %s: fsync directory: %v", s.path, s.unwrapPath(err))
	}
	return nil
}
