package infra

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/infra/image"
)

// TestMakeImage runs `make image` as a user would, reads the tarball back
// (what `docker load` reads: manifest.json, the config, the layers) and
// runs the binary from the image's own filesystem, as its own user.
func TestMakeImage(t *testing.T) {
	out := filepath.Join(t.TempDir(), "edgepoll-image.tar")
	mk := exec.Command("make", "-C", "..", "--no-print-directory", "image", "IMAGE="+out)
	b, err := mk.CombinedOutput()
	require.NoError(t, err, "make image:\n%s", b)

	rev, err := exec.Command("git", "rev-parse", "HEAD").Output()
	require.NoError(t, err)
	ver, err := exec.Command("git", "describe", "--tags", "--always", "--dirty").Output()
	require.NoError(t, err)

	tags := loadManifestTags(t, out)
	assert.Equal(t, []string{"edgepoll:" + strings.TrimSpace(string(ver))}, tags, "the tag docker load gives it")

	img, err := tarball.ImageFromPath(out, nil)
	require.NoError(t, err)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, "linux", cf.OS)
	assert.Equal(t, "amd64", cf.Architecture)
	assert.Equal(t, []string{"/edgepoll"}, cf.Config.Entrypoint)
	assert.Empty(t, cf.Config.Cmd)
	assert.Equal(t, "65532:65532", cf.Config.User, "not root")
	assert.Equal(t, "/var/lib/edgepoll", cf.Config.WorkingDir)
	assert.Equal(t, strings.TrimSpace(string(rev)), cf.Config.Labels["org.opencontainers.image.revision"])
	assert.Equal(t, strings.TrimSpace(string(ver)), cf.Config.Labels["org.opencontainers.image.version"])
	assert.True(t, strings.HasPrefix(cf.Config.Labels["org.opencontainers.image.source"], "https://"), cf.Config.Labels)
	layers, err := img.Layers()
	require.NoError(t, err)
	require.Len(t, layers, 1, "one layer on an empty base")

	root := extract(t, img)
	_, err = os.Lstat(filepath.Join(root, "bin/sh"))
	assert.True(t, os.IsNotExist(err), "no shell in the image")
	pool := readRoots(t, filepath.Join(root, image.CAFile))
	assert.Greater(t, pool, 100, "CA roots")
	passwd, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	require.NoError(t, err)
	assert.Contains(t, string(passwd), ":65532:65532:")

	runFromImage(t, root, strings.TrimSpace(string(ver)))
}

// runFromImage runs one cycle of the image's binary inside the image's
// filesystem (chroot) as its user, against a fake ilert API on loopback:
// it delivers to stdout and keeps its default SQLite state in the working
// directory, which the user must be able to write.
func runFromImage(t *testing.T, root, version string) {
	require.Equal(t, 0, os.Getuid(), "the image test chroots into the image as its user: run it as root (CI does)")
	api := fakeAPI(t)
	run := func(args ...string) (string, string, error) {
		cmd := exec.Command("/edgepoll", args...)
		cmd.Dir = "/var/lib/edgepoll"
		cmd.Env = []string{"ILERT_EDGE_CONNECTOR_KEY=il1eco-test-key", "ILERT_API_HOST=" + api}
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Credential: &syscall.Credential{Uid: image.UID, Gid: image.GID}}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	out, errOut, err := run("--version")
	require.NoError(t, err, errOut)
	assert.Equal(t, "edgepoll "+version, strings.TrimSpace(out))

	out, errOut, err = run("--mode", "stdout")
	require.NoError(t, err, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2, "two items delivered to stdout: %s\n%s", out, errOut)
	assert.JSONEq(t, `{"id":"a1","eventType":"alert-created"}`, lines[0])
	st, err := os.Stat(filepath.Join(root, "var/lib/edgepoll/edgepoll.db"))
	require.NoError(t, err, "the default state file, written by the image's user")
	assert.Equal(t, uint32(image.UID), st.Sys().(*syscall.Stat_t).Uid)
}

// fakeAPI serves two items after cursor 0 and none after that.
func fakeAPI(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/edge-connections/events" || r.Header.Get("Authorization") != "il1eco-test-key" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		items := `[]`
		if r.URL.Query().Get("after-id") == "0" {
			items = `[{"id":1,"payload":{"id":"a1","eventType":"alert-created"}},{"id":2,"payload":{"id":"a1","eventType":"alert-resolved"}}]`
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"items":%s}`, items)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

func loadManifestTags(t *testing.T, path string) []string {
	t.Helper()
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(path) })
	require.NoError(t, err)
	require.Len(t, m, 1)
	return m[0].RepoTags
}

// untar writes a tar stream under root (regular files, directories and
// symlinks, with their modes and owners; nothing outside root).
func untar(r io.Reader, root string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		p := filepath.Join(root, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, os.FileMode(h.Mode)&os.ModePerm); err != nil {
				return err
			}
			// MkdirAll is subject to the umask; the sticky bit needs Chmod.
			if err := os.Chmod(p, os.FileMode(h.Mode)&os.ModePerm|stickyOf(h.Mode)); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&os.ModePerm)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, p); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: unexpected tar entry type %c", h.Name, h.Typeflag)
		}
		if os.Getuid() == 0 {
			if err := os.Lchown(p, h.Uid, h.Gid); err != nil {
				return err
			}
		}
	}
}

func stickyOf(mode int64) os.FileMode {
	if mode&0o1000 != 0 {
		return os.ModeSticky
	}
	return 0
}

// extract writes the image's flattened filesystem under a new directory.
func extract(t *testing.T, img v1.Image) string {
	t.Helper()
	root := t.TempDir()
	rc := mutate.Extract(img)
	defer rc.Close()
	require.NoError(t, untar(rc, root))
	return root
}

func readRoots(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	n := 0
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		_, err := x509.ParseCertificate(blk.Bytes)
		require.NoError(t, err)
		n++
	}
	require.Empty(t, bytes.TrimSpace(b), "trailing data in the CA file")
	return n
}

// TestImageIsReproducible: the same binary and options give the same
// image digest (fixed times, ordered entries), and arm64 is labelled so.
func TestImageIsReproducible(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "edgepoll")
	require.NoError(t, os.WriteFile(bin, []byte("not really a binary"), 0o755))
	o := image.Options{Binary: bin, Arch: "arm64", Version: "v0.0.0-test", Created: time.Unix(1700000000, 0)}
	a, err := image.Build(o)
	require.NoError(t, err)
	b, err := image.Build(o)
	require.NoError(t, err)
	da, _ := a.Digest()
	db, _ := b.Digest()
	assert.Equal(t, da, db)
	cf, err := a.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, "arm64", cf.Architecture)
	raw, err := a.RawConfigFile()
	require.NoError(t, err)
	assert.True(t, json.Valid(raw))

	_, err = image.Build(image.Options{Binary: bin, Arch: "386", Version: "x"})
	assert.ErrorContains(t, err, "amd64 or arm64")
	_, err = image.Options{Version: "bad tag!"}.Tag()
	assert.ErrorContains(t, err, "not a valid image tag")
}
