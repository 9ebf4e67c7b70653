package mqtt

import (
	"context"
	"net"
	"strconv"
)

// Check implements poll.Checker: the broker accepted the CONNECT (New
// connects; this reconnects if the connection dropped since). Nothing is
// published.
func (s *Sink) Check(ctx context.Context) (string, error) {
	if _, err := s.connection(ctx); err != nil {
		return "", err
	}
	return "CONNECT accepted by " + net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port)), nil
}
