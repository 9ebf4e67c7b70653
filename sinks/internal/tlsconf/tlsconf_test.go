package tlsconf

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgepoll/edgepoll/poll"
)

// TestLoadErrorsNameTheFlag: a CA file that holds no certificate, or a
// client certificate that does not load, is a configuration error naming
// the flag the operator wrote (--mqtt-ca, --kafka-cert), not a Go field.
func TestLoadErrorsNameTheFlag(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		prefix, ca, cert, key, field string
	}{
		{"mqtt", notPEM, "", "", "mqtt-ca"},
		{"kafka", filepath.Join(dir, "missing.pem"), "", "", "kafka-ca"},
		{"kafka", "", notPEM, notPEM, "kafka-cert"},
		{"mqtt", "", notPEM, "", "mqtt-cert"},
	} {
		_, err := Load(tc.prefix, tc.ca, tc.cert, tc.key, "")
		var ce *poll.ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("Load(%s, ca=%q, cert=%q): got %v, want a ConfigError for %s", tc.prefix, tc.ca, tc.cert, err, tc.field)
		}
	}
}
