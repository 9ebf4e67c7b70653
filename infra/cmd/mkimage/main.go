// mkimage writes edgepoll's container image as a tarball (`make image`):
//
//	go run ./cmd/mkimage -bin ../bin/edgepoll-linux-amd64 -arch amd64 -version v1.2.3 -o ../bin/edgepoll-image.tar
//
// Load it with `docker load -i FILE` or `podman load -i FILE`, or push it
// with `crane push FILE REGISTRY/edgepoll:TAG`.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/edgepoll/edgepoll/infra/image"
)

func main() {
	var o image.Options
	out := flag.String("o", "", "output tarball")
	epoch := flag.Int64("created", 0, "creation time, Unix seconds (default: the epoch, reproducible)")
	flag.StringVar(&o.Binary, "bin", "", "static linux edgepoll binary")
	flag.StringVar(&o.Arch, "arch", "amd64", "GOARCH of the binary: amd64 or arm64")
	flag.StringVar(&o.Version, "version", "dev", "version (image tag and label)")
	flag.StringVar(&o.Revision, "revision", "", "source revision (label)")
	flag.StringVar(&o.Source, "source", "https://github.com/edgepoll/edgepoll", "source repository (label)")
	flag.Parse()
	if o.Binary == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "mkimage: -bin and -o are required")
		os.Exit(2)
	}
	o.Created = time.Unix(*epoch, 0).UTC()
	if err := image.Write(*out, o); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
	fmt.Println(*out)
}
