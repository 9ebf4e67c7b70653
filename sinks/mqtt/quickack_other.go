//go:build !linux

package mqtt

import (
	"io"
	"net"
)

// quickAckReader: TCP_QUICKACK is Linux-only; elsewhere reads are plain.
func quickAckReader(r io.Reader, _ net.Conn) io.Reader { return r }
