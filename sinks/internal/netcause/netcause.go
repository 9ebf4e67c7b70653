// Package netcause names the cause of a failed connection to a target as a
// bounded reason: connection_refused, dns, tls, connect_timeout, or "" when
// it is none of these.
package netcause

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"syscall"
)

// Reason returns the bounded reason of a dial or handshake error, or "".
func Reason(err error) string {
	var (
		dns  *net.DNSError
		nerr net.Error
		cve  *tls.CertificateVerificationError
		uae  x509.UnknownAuthorityError
		he   x509.HostnameError
		rhe  tls.RecordHeaderError
		ae   tls.AlertError
	)
	switch {
	case err == nil:
		return ""
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.As(err, &dns):
		return "dns"
	case errors.As(err, &cve), errors.As(err, &uae), errors.As(err, &he), errors.As(err, &rhe), errors.As(err, &ae),
		strings.Contains(err.Error(), "tls:"):
		return "tls"
	case errors.As(err, &nerr) && nerr.Timeout():
		return "connect_timeout"
	}
	return ""
}
