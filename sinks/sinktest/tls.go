package sinktest

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgepoll/edgepoll/poll"
)

// RefusesCAFileWithoutCertificate checks that a target's Validate (run
// before any poll, also for every --config connection) refuses a readable
// CA file that holds no PEM certificate, naming flag, the target's CA
// flag. validate runs Validate with caFile as the CA file.
func RefusesCAFileWithoutCertificate(t *testing.T, flag string, validate func(caFile string) error) {
	t.Helper()
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := validate(notPEM)
	var ce *poll.ConfigError
	if !errors.As(err, &ce) || ce.Field != flag {
		t.Fatalf("Validate: got %v, want a ConfigError for %s", err, flag)
	}
}
