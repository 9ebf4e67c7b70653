package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// JSON logs give durations as float seconds; text logs keep Go's "1.5s".
func TestJSONLogDurationsAreSeconds(t *testing.T) {
	var out bytes.Buffer
	newLogger(&CLI{LogFormat: "json"}, &out).Info("x", "duration", 1500*time.Millisecond, slog.Group("g", "wait", 2*time.Minute))
	var rec struct {
		Duration any `json:"duration"`
		G        struct {
			Wait any `json:"wait"`
		} `json:"g"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &rec), out.String())
	assert.Equal(t, 1.5, rec.Duration)
	assert.Equal(t, 120.0, rec.G.Wait)

	out.Reset()
	newLogger(&CLI{LogFormat: "text"}, &out).Info("x", "duration", 1500*time.Millisecond)
	assert.Contains(t, out.String(), "duration=1.5s")
}
