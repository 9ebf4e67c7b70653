package http

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	nethttp "net/http"
	"net/url"
)

// Check implements poll.Checker: a TCP connection to the target and, for
// https, a TLS handshake that verifies its certificate. No request is sent.
// Behind a proxy (HTTPS_PROXY / HTTP_PROXY) only the proxy is reached.
func (s *Sink) Check(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	addr := hostPort(s.u)
	proxy, _ := nethttp.ProxyFromEnvironment(&nethttp.Request{URL: s.u})
	if proxy != nil {
		paddr := hostPort(proxy)
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", paddr)
		if err != nil {
			return "", fmt.Errorf("connecting to the proxy %s: %v", paddr, err)
		}
		c.Close()
		return "proxy " + paddr + " reachable (the target behind it is not checked)", nil
	}
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("connecting to %s: %v", addr, err)
	}
	defer c.Close()
	if s.u.Scheme != "https" {
		return "connected to " + addr, nil
	}
	tc := tls.Client(c, &tls.Config{ServerName: s.u.Hostname(), MinVersion: tls.VersionTLS12})
	if err := tc.HandshakeContext(ctx); err != nil {
		return "", fmt.Errorf("TLS with %s: %v", addr, err)
	}
	return "connected to " + addr + ", TLS ok (" + tls.VersionName(tc.ConnectionState().Version) + ")", nil
}

func hostPort(u *url.URL) string {
	port := u.Port()
	switch {
	case port != "":
	case u.Scheme == "https":
		port = "443"
	default:
		port = "80"
	}
	return net.JoinHostPort(u.Hostname(), port)
}
