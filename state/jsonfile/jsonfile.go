// Package jsonfile is the JSON-file state backend (--state json:PATH): a
// small, human-readable file holding one cursor per connection:
//
//	{"version":1,"cursors":{"<connection hash>":{"cursor":42,"updated_at":"..."}}}
//
// Durability: Save rewrites the file atomically (write a temp file in the
// same directory, rename over the old one), so a killed process leaves either
// the old or the new file, never a torn one. Sync fsyncs the file and its
// directory, so at the end of each batch the cursor survives power loss.
// A corrupt or unreadable file is an error, never a silent reset to 0.
//
// Several connections (and processes) can share one file: each Save is a
// read-modify-write under a short whole-file lock (PATH.lock). The lease is a
// kernel lock per connection (PATH.lock-<connection hash>), freed by the
// kernel when its holder dies.
package jsonfile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/state/internal/filelock"
)

const fileVersion = 1

type entry struct {
	Cursor    int64  `json:"cursor"`
	UpdatedAt string `json:"updated_at"`
}

type file struct {
	Version int              `json:"version"`
	Cursors map[string]entry `json:"cursors"`
}

// Store is a JSON-file poll.Store.
type Store struct {
	path string
	log  *slog.Logger
}

// Open checks that path is usable: its directory exists, and the file, if
// present, parses.
func Open(_ context.Context, path string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("state %s: directory %s does not exist", path, dir)
	}
	s := &Store{path: path, log: log}
	if _, err := s.read(); err != nil {
		return nil, err
	}
	return s, nil
}

// read parses the file; an absent file is empty state.
func (s *Store) read() (*file, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return &file{Version: fileVersion, Cursors: map[string]entry{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state %s: %v", s.path, unwrapPath(err))
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
	return &f, nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Acquire takes the connection's lease (a kernel lock).
func (s *Store) Acquire(_ context.Context, conn, owner string) (poll.Lease, error) {
	c := conn
	if len(c) > 32 {
		c = c[:32]
	}
	lk, err := filelock.TryLock(s.path+".lock-"+c, fmt.Sprintf("%s pid %d since %s", owner, os.Getpid(), time.Now().UTC().Format(time.RFC3339)))
	if errors.Is(err, filelock.ErrLocked) {
		return nil, fmt.Errorf("%w: %v", poll.ErrLeaseHeld, err)
	}
	if err != nil {
		return nil, fmt.Errorf("state %s: lease: %v", s.path, err)
	}
	return &lease{s: s, conn: conn, lk: lk}, nil
}

// Close implements poll.Store.
func (s *Store) Close() error { return nil }

type lease struct {
	s        *Store
	conn     string
	lk       *filelock.Lock
	released bool
}

func (l *lease) Load(context.Context) (int64, bool, error) {
	f, err := l.s.read()
	if err != nil {
		return 0, false, err
	}
	e, ok := f.Cursors[l.conn]
	return e.Cursor, ok, nil
}

func (l *lease) Save(_ context.Context, cursor int64) error {
	if l.released {
		return errors.New("save after the lease was released")
	}
	return l.s.update(func(f *file) bool {
		if e, ok := f.Cursors[l.conn]; ok && e.Cursor >= cursor {
			return false
		}
		f.Cursors[l.conn] = entry{Cursor: cursor, UpdatedAt: time.Now().UTC().Format(time.RFC3339Nano)}
		return true
	})
}

// update does a read-modify-write of the whole file under the file lock and
// replaces it atomically (temp file + rename) when change reports a change.
func (s *Store) update(change func(*file) bool) error {
	lk, err := filelock.Acquire(s.path + ".lock")
	if err != nil {
		return fmt.Errorf("state %s: %v", s.path, err)
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
	tmp, err := os.CreateTemp(filepath.Dir(s.path), "."+filepath.Base(s.path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("state %s: %v", s.path, unwrapPath(err))
	}
	_, werr := tmp.Write(append(b, '\n'))
	cerr := tmp.Close()
	if werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("state %s: writing: %v", s.path, errors.Join(werr, cerr))
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("state %s: %v", s.path, unwrapPath(err))
	}
	return nil
}

// Sync fsyncs the file and its directory (power-loss durable).
func (l *lease) Sync(context.Context) error {
	for _, p := range []string{l.s.path, filepath.Dir(l.s.path)} {
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) && p == l.s.path {
			continue // nothing saved yet
		}
		if err != nil {
			return fmt.Errorf("state %s: sync: %v", l.s.path, unwrapPath(err))
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("state %s: fsync %s: %v", l.s.path, p, err)
		}
	}
	return nil
}

func (l *lease) Release(context.Context) error {
	if l.released {
		return nil
	}
	l.released = true
	return l.lk.Unlock()
}
