// Package tlsconf builds the TLS client configuration of the broker sinks
// from PEM files, with errors naming the flag.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"os"

	"github.com/edgepoll/edgepoll/poll"
)

// Load returns a TLS 1.2+ client config: caFile (optional) replaces the
// system roots; certFile and keyFile (both or neither) add a client
// certificate; serverName overrides the name checked (optional). Errors
// name the flags prefix-ca and prefix-cert (prefix: "kafka", "mqtt").
func Load(prefix, caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, &poll.ConfigError{Field: prefix + "-ca", Msg: err.Error()}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &poll.ConfigError{Field: prefix + "-ca", Msg: "no PEM certificate found"}
		}
		tc.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, &poll.ConfigError{Field: prefix + "-cert", Msg: "certificate and key go together"}
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, &poll.ConfigError{Field: prefix + "-cert", Msg: "loading the client certificate: " + err.Error()}
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
