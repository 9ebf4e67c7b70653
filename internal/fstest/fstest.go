// Package fstest gives tests real storage failures: a tiny tmpfs to fill
// (disk full), a read-only remount, and a run of the test as an
// unprivileged user (root ignores permission bits). Mounting needs root:
// without it the mount helpers call testenv.Missing (a failure under CI or
// make test, a skip saying why elsewhere).
package fstest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"

	"github.com/edgepoll/edgepoll/internal/testenv"
)

// Tmpfs mounts a tmpfs of size (e.g. "256k") on a new directory, unmounted
// when the test ends.
func Tmpfs(t testing.TB, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, fmt.Sprintf("root, to mount a tmpfs (this test runs as uid %d)", os.Geteuid()), "run the tests as root, as CI does")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0777"); err != nil {
		testenv.Missing(t, fmt.Sprintf("mount permission for a tmpfs on %s (%v)", dir, err), "a container with CAP_SYS_ADMIN")
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
	return dir
}

// Fill writes to a file in dir until its file system is full.
func Fill(t testing.TB, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := bytes.Repeat([]byte{'x'}, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			break
		}
	}
	// The last partial page too.
	for {
		if _, err := f.Write([]byte{'x'}); err != nil {
			return
		}
	}
}

// ReadOnly remounts the tmpfs at dir (from Tmpfs) read-only.
func ReadOnly(t testing.TB, dir string) {
	t.Helper()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remounting %s read-only: %v", dir, err)
	}
}

const childEnv = "EDGEPOLL_FSTEST_UNPRIVILEGED_DIR"

// Unprivileged returns a directory for a test that needs permission bits
// to count, and true when the caller is to run the test's body: as a user
// other than root (in-process), or in the copy of the test binary this
// function runs as uid/gid 65534 when the test runs as root (the caller
// then gets false: the child's outcome is the test's).
func Unprivileged(t *testing.T) (string, bool) {
	t.Helper()
	if dir := os.Getenv(childEnv); dir != "" {
		return dir, true
	}
	if os.Geteuid() != 0 {
		return t.TempDir(), true
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	base, err := os.MkdirTemp("", "edgepoll-fstest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	bin, dir := filepath.Join(base, "test.bin"), filepath.Join(base, "work")
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{base, dir} {
		if err := os.Chmod(p, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Fatalf("%s as uid 65534: %v\n%s", t.Name(), err, out)
	}
	return "", false
}
