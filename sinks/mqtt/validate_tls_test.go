package mqtt

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/sinks"
)

// TestValidateRefusesACAFileWithoutCertificate: Validate (run before any
// poll, also for every --config connection) refuses a readable --mqtt-ca that
// holds no PEM certificate, naming the flag; it used to surface only when
// the sink was opened, as a failed cycle (exit 1) naming --CAFile.
func TestValidateRefusesACAFileWithoutCertificate(t *testing.T) {
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := Options{Host: "h", Port: 1883, CA: notPEM, ConnectTimeout: time.Second}
	err := o.Validate(sinks.Shared{Topic: "t"})
	var ce *poll.ConfigError
	if !errors.As(err, &ce) || ce.Field != "mqtt-ca" {
		t.Fatalf("Validate: got %v, want a ConfigError for mqtt-ca", err)
	}
}
