package mqtt

import (
	"testing"
	"time"

	"github.com/edgepoll/edgepoll/sinks"
	"github.com/edgepoll/edgepoll/sinks/sinktest"
)

// TestValidateRefusesACAFileWithoutCertificate: Validate refuses a readable
// --mqtt-ca that holds no PEM certificate, naming the flag; it used to
// surface only when the sink was opened, as a failed cycle (exit 1) naming
// --CAFile.
func TestValidateRefusesACAFileWithoutCertificate(t *testing.T) {
	sinktest.RefusesCAFileWithoutCertificate(t, "mqtt-ca", func(ca string) error {
		o := Options{Host: "h", Port: 1883, CA: ca, ConnectTimeout: time.Second}
		return o.Validate(sinks.Shared{Topic: "t"})
	})
}
