// Package fserr names a storage failure of a local state file as an
// operator reads it: "disk full", "permission denied", "read-only file
// system". SQLite reports these as its own result codes (SQLITE_FULL,
// SQLITE_READONLY, SQLITE_CANTOPEN, SQLITE_PERM, SQLITE_IOERR), which say
// nothing of the cause, so for those the file and its directory are probed.
// A storage failure must never read like a damaged file ("not a usable
// SQLite database"), which invites deleting the state: a full replay.
package fserr

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// The kinds of storage failure, as messages begin with them.
const (
	DiskFull         = "disk full"
	PermissionDenied = "permission denied"
	ReadOnly         = "read-only file system"
)

// SQLite's primary result codes that a storage failure produces.
const (
	sqlitePerm     = 3
	sqliteReadOnly = 8
	sqliteIOErr    = 10
	sqliteFull     = 13
	sqliteCantOpen = 14
)

// Kind returns what storage failure err is for the file at path (one of
// the constants), or "" when it is none of them.
func Kind(path string, err error) string {
	if err == nil {
		return ""
	}
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return DiskFull
	case errors.Is(err, syscall.EROFS):
		return ReadOnly
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return PermissionDenied
	}
	var coded interface{ Code() int }
	if !errors.As(err, &coded) {
		return ""
	}
	switch coded.Code() & 0xff {
	case sqliteFull:
		return DiskFull
	case sqlitePerm, sqliteReadOnly, sqliteCantOpen, sqliteIOErr:
		return Probe(path)
	}
	return ""
}

// Describe returns err named by its kind ("disk full (<err>)"), or err
// itself when it is no storage failure or already says so.
func Describe(path string, err error) error {
	k := Kind(path, err)
	if k == "" || strings.Contains(err.Error(), k) {
		return err
	}
	return &described{kind: k, err: err}
}

type described struct {
	kind string
	err  error
}

func (d *described) Error() string { return d.kind + " (" + d.err.Error() + ")" }
func (d *described) Unwrap() error { return d.err }

// Probe finds out why the file at path (or its directory, when the file is
// not there) cannot be written: a read-only file system, no permission, a
// full disk; "" when none of them shows.
func Probe(path string) string {
	dir := filepath.Dir(path)
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err == nil && fs.Flags&stRdOnly != 0 {
		return ReadOnly
	}
	if f, err := os.OpenFile(path, os.O_RDWR, 0); err == nil {
		f.Close()
	} else if k := Kind(path, errno(err)); k != "" {
		return k
	} else if errors.Is(err, os.ErrNotExist) {
		if err := syscall.Access(dir, wOK|xOK); err != nil {
			if k := Kind(path, err); k != "" {
				return k
			}
		}
	}
	if err := syscall.Statfs(dir, &fs); err == nil && fs.Bavail == 0 {
		return DiskFull
	}
	return ""
}

// errno is the errno inside err, or err (an errno alone: no SQLite code
// to recurse on).
func errno(err error) error {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return err
}

const (
	stRdOnly = 1 // ST_RDONLY, statfs(2)
	wOK      = 2 // W_OK, access(2)
	xOK      = 1 // X_OK
)
