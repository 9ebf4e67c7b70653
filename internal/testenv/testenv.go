// Package testenv decides what a test does when an external component it
// needs (mosquitto, dynalite, ...) is missing: under CI or `make test`
// (CI or EDGEPOLL_REQUIRE_INTEGRATION set) the test fails; on a developer's
// machine run with plain `go test` it is skipped with a loud reason.
package testenv

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
)

// Required reports whether missing integration components must fail tests.
func Required() bool {
	return os.Getenv("CI") != "" || os.Getenv("EDGEPOLL_REQUIRE_INTEGRATION") != ""
}

// Missing fails (when Required) or skips t because what is not available.
func Missing(t testing.TB, what, howToInstall string) {
	t.Helper()
	if Required() {
		t.Fatalf("integration component missing: %s (install: %s)", what, howToInstall)
	}
	t.Skipf("SKIPPED: integration component missing: %s (install: %s; `make test` installs it)", what, howToInstall)
}

// LookPath finds an executable on PATH or in the given extra locations
// (relative ones are resolved against the repository root). It calls
// Missing when none is found.
func LookPath(t testing.TB, name, howToInstall string, extra ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, e := range extra {
		if !filepath.IsAbs(e) {
			e = filepath.Join(RepoRoot(), e)
		}
		if st, err := os.Stat(e); err == nil && !st.IsDir() {
			return e
		}
	}
	Missing(t, name, howToInstall)
	return ""
}

// RepoRoot is the repository root (the directory holding go.mod).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// FreePort returns a loopback port that was free a moment ago (the
// listener that found it is closed again): for a server the test starts on
// it, or for an address that refuses connections.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// RefusedAddr returns a loopback host:port nothing listens on (a
// connection to it is refused).
func RefusedAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}
