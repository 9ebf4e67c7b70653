package deadletter

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/edgepoll/edgepoll/state/internal/filelock"
)

// File is the file:PATH dead letter. Appends and removals of every process
// are serialised by a kernel lock on PATH.lock.
type File struct {
	path string
	mu   sync.Mutex // one writer per process at a time (the lock is per open file)
}

// OpenFile checks that the dead letter's directory exists; the file is
// created by the first Append (mode 0600: payloads may be confidential).
func OpenFile(path string) (*File, error) {
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("dead letter %s: directory %s does not exist", path, dir)
	}
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("dead letter %s: not a regular file", path)
	}
	return &File{path: path}, nil
}

// Append writes rec as one line and fsyncs it before returning.
func (f *File) Append(_ context.Context, conn string, rec Record) error {
	if rec.Connection == "" {
		rec.Connection = conn
	}
	b, err := encode(rec)
	if err != nil {
		return fmt.Errorf("dead letter %s: %v", f.path, err)
	}
	return f.locked(func() error { return f.append(b) })
}

// locked runs fn holding the dead letter's locks (in-process and kernel).
func (f *File) locked(fn func() error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	lk, err := filelock.Acquire(f.path + ".lock")
	if err != nil {
		return fmt.Errorf("dead letter %s: %v", f.path, unwrapPath(err))
	}
	defer lk.Unlock()
	return fn()
}

// append writes and fsyncs one encoded line.
func (f *File) append(b []byte) error {
	fd, err := os.OpenFile(f.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("dead letter %s: %v", f.path, unwrapPath(err))
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return fmt.Errorf("dead letter %s: %v", f.path, err)
	}
	if st.Size() > 0 {
		// A line torn by a crash (never fsynced, so its item was not
		// skipped) must not swallow this one.
		last := make([]byte, 1)
		if _, err := fd.ReadAt(last, st.Size()-1); err == nil && last[0] != '\n' {
			b = append([]byte{'\n'}, b...)
		}
	}
	if _, err := fd.Write(b); err != nil {
		return fmt.Errorf("dead letter %s: writing: %v", f.path, unwrapPath(err))
	}
	if err := fd.Sync(); err != nil {
		return fmt.Errorf("dead letter %s: fsync: %v", f.path, err)
	}
	if st.Size() == 0 {
		return syncDir(f.path)
	}
	return nil
}

// Close implements poll.DeadLetter.
func (f *File) Close() error { return nil }

// List returns conn's records in item order, one per item (the latest line
// of an item skipped again after a crash). Lines that do not parse (a
// write torn by a crash) are left out.
func (f *File) List(_ context.Context, conn string) ([]Record, error) {
	lines, err := f.read()
	if err != nil {
		return nil, err
	}
	var out []Record
	at := map[int64]int{} // an item skipped again (after a crash): its latest line
	for _, l := range lines {
		rec, err := decode(l)
		if err != nil || (rec.Connection != "" && rec.Connection != conn) {
			continue
		}
		if i, ok := at[rec.ID]; ok {
			out[i] = rec
			continue
		}
		at[rec.ID] = len(out)
		out = append(out, rec)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Remove rewrites the file without conn's records of these ids
// (atomically: temp file, fsync, rename, fsync the directory). Every other
// line, unparsable ones included, is kept.
func (f *File) Remove(_ context.Context, conn string, ids ...int64) error {
	drop := map[int64]bool{}
	for _, id := range ids {
		drop[id] = true
	}
	return f.locked(func() error { return f.rewrite(conn, drop) })
}

func (f *File) rewrite(conn string, drop map[int64]bool) error {
	lines, err := f.read()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	removed := false
	for _, l := range lines {
		if rec, err := decode(l); err == nil && drop[rec.ID] && (rec.Connection == "" || rec.Connection == conn) {
			removed = true
			continue
		}
		buf.Write(l)
		buf.WriteByte('\n')
	}
	if !removed {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.path), "."+filepath.Base(f.path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("dead letter %s: %v", f.path, unwrapPath(err))
	}
	_, werr := tmp.Write(buf.Bytes())
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("dead letter %s: writing: %v", f.path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("dead letter %s: %v", f.path, unwrapPath(err))
	}
	if err := os.Rename(tmp.Name(), f.path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("dead letter %s: %v", f.path, unwrapPath(err))
	}
	return syncDir(f.path)
}

// read returns the file's non-empty lines (an absent file has none).
func (f *File) read() ([][]byte, error) {
	fd, err := os.Open(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dead letter %s: %v", f.path, unwrapPath(err))
	}
	defer fd.Close()
	var lines [][]byte
	r := bufio.NewReader(fd)
	for {
		l, err := r.ReadBytes('\n')
		if l = bytes.TrimRight(l, "\r\n"); len(bytes.TrimSpace(l)) > 0 {
			lines = append(lines, l)
		}
		if err == io.EOF {
			return lines, nil
		}
		if err != nil {
			return nil, fmt.Errorf("dead letter %s: %v", f.path, err)
		}
	}
}

func syncDir(path string) error {
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("dead letter %s: %v", path, unwrapPath(err))
	}
	defer dir.Close()
	if err := dir.Sync(); err != nil {
		return fmt.Errorf("dead letter %s: fsync directory: %v", path, err)
	}
	return nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
