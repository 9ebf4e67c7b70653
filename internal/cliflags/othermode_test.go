package cliflags

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// OtherModeFlag refuses another mode's flag: on the command line as it was
// spelled, with --config in the connection's entry (the first by name).
func TestOtherModeFlag(t *testing.T) {
	k, flags := testParser(t)
	owners := map[string][]string{"http-url": {"http"}, "mqtt-host": {"mqtt"}, "mqtt-port": {"mqtt"}, "topic": {"kafka", "mqtt"}}
	check := func(mode string, file *FileNames, args ...string) error {
		n := NewNamer(k, args)
		n.File = file
		return n.OtherModeFlag("mode", mode, owners, Scan(args, flags))
	}
	err := check("http", nil, "--edge_mode", "http", "-v", "--mqtt_port", "1", "--http-url", "x")
	assert.EqualError(t, err, "--mqtt_port: is a setting of --mode mqtt, but --edge_mode is http: remove it or fix the mode")
	var ue *UsageError
	require.True(t, errors.As(err, &ue))
	assert.EqualError(t, check("mqtt", nil, "--http-url", "x", "-m", "h"),
		"--http-url: is a setting of --mode http, but --mode is mqtt: remove it or fix the mode")
	assert.NoError(t, check("mqtt", nil, "-m", "h", "-q", "1883", "-v"))

	file := &FileNames{Path: "c.yaml", Prefix: "connections[0] (a): ", Conn: map[string]bool{"verbose": true, "topic": true, "mqtt-host": true}}
	assert.EqualError(t, check("http", file, "--http-url", "x"),
		"connections[0] (a): mqtt-host: is a setting of --mode mqtt, but connections[0] (a): mode is http: remove it or fix the mode")
	file.Conn = map[string]bool{"topic": true}
	assert.EqualError(t, check("stdout", file),
		"connections[0] (a): topic: is a setting of --mode kafka/mqtt, but connections[0] (a): mode is stdout: remove it or fix the mode")
	assert.NoError(t, check("kafka", file, "--http-url", "x"), "the command line is a default for every connection")
}
