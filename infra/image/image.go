// Package image builds edgepoll's container image without a container
// engine: one layer with the static binary, CA roots, a non-root user and
// its state directory, on an empty base (no shell, no package manager).
// The result is written as a tarball that `docker load` and `podman load`
// accept, and that `crane push` sends to a registry.
package image

import (
	"archive/tar"
	"bytes"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"regexp"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// The image's fixed layout.
const (
	Entrypoint = "/edgepoll"
	// UID and GID of the user edgepoll runs as (distroless's "nonroot").
	UID, GID = 65532, 65532
	// StateDir is the working directory, owned by the user: the default
	// sqlite:edgepoll.db lands there (mount a volume on it).
	StateDir = "/var/lib/edgepoll"
	// CAFile is where Go's crypto/x509 looks first on Linux.
	CAFile = "/etc/ssl/certs/ca-certificates.crt"
	// MetricsPort is the conventional -p port of the manifests.
	MetricsPort = "8977/tcp"
)

// Options say what to build.
type Options struct {
	// Binary is the path of a static linux edgepoll binary for Arch.
	Binary string
	// Arch is the GOARCH of Binary: amd64 or arm64.
	Arch string
	// Version and Revision go into the OCI labels (and the tag: Tag).
	Version, Revision string
	// Source is the repository URL (label org.opencontainers.image.source).
	Source string
	// Created is the image's creation time (zero: the Unix epoch, for a
	// reproducible image).
	Created time.Time
}

var tagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// Tag is the reference the tarball names: edgepoll:<version>.
func (o Options) Tag() (name.Tag, error) {
	if !tagRE.MatchString(o.Version) {
		return name.Tag{}, fmt.Errorf("version %q is not a valid image tag", o.Version)
	}
	return name.NewTag("edgepoll:"+o.Version, name.WithDefaultRegistry(""))
}

// Build returns the image.
func Build(o Options) (v1.Image, error) {
	if o.Arch != "amd64" && o.Arch != "arm64" {
		return nil, fmt.Errorf("arch %q: want amd64 or arm64", o.Arch)
	}
	bin, err := os.ReadFile(o.Binary)
	if err != nil {
		return nil, err
	}
	layerTar, err := rootfs(bin, o.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", o.Arch
	cf.Created = v1.Time{Time: o.Created}
	cf.Config = v1.Config{
		Entrypoint:   []string{Entrypoint},
		User:         fmt.Sprintf("%d:%d", UID, GID),
		WorkingDir:   StateDir,
		Env:          []string{"SSL_CERT_FILE=" + CAFile},
		ExposedPorts: map[string]struct{}{MetricsPort: {}},
		Volumes:      map[string]struct{}{StateDir: {}},
		Labels: map[string]string{
			"org.opencontainers.image.title":       "edgepoll",
			"org.opencontainers.image.description": "pulls ilert edge connection events and delivers them in order, at least once",
			"org.opencontainers.image.source":      o.Source,
			"org.opencontainers.image.version":     o.Version,
			"org.opencontainers.image.revision":    o.Revision,
		},
	}
	return mutate.ConfigFile(img, cf)
}

// Write builds the image and writes it to path as a docker/podman-loadable
// tarball tagged edgepoll:<version>.
func Write(path string, o Options) error {
	tag, err := o.Tag()
	if err != nil {
		return err
	}
	img, err := Build(o)
	if err != nil {
		return err
	}
	return tarball.WriteToFile(path, tag, img)
}

// rootfs is the single layer's tar.
func rootfs(bin []byte, mtime time.Time) ([]byte, error) {
	roots, err := caBundle()
	if err != nil {
		return nil, err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:edgepoll:%s:/sbin/nologin\n", UID, GID, StateDir)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", GID)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	entries := []struct {
		name     string
		mode     int64
		uid, gid int
		body     []byte
		dir      bool
	}{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, body: []byte(passwd)},
		{name: "etc/group", mode: 0o644, body: []byte(group)},
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: CAFile[1:], mode: 0o644, body: roots},
		{name: "tmp/", mode: 0o1777, dir: true},
		{name: "var/", mode: 0o755, dir: true},
		{name: "var/lib/", mode: 0o755, dir: true},
		{name: StateDir[1:] + "/", mode: 0o755, uid: UID, gid: GID, dir: true},
		{name: Entrypoint[1:], mode: 0o755, body: bin},
	}
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: mtime, Format: tar.FormatPAX}
		if e.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// caBundle is the Mozilla (NSS) root store as one PEM file, from
// golang.org/x/crypto/x509roots/fallback/bundle: the same roots in every
// build, whatever the build machine trusts. Roots with constraints that
// PEM cannot carry (distrust-after dates) are left out.
func caBundle() ([]byte, error) {
	var out bytes.Buffer
	n := 0
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			continue
		}
		if err := pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate}); err != nil {
			return nil, err
		}
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("the CA bundle is empty")
	}
	return out.Bytes(), nil
}
