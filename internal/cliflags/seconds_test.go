package cliflags

import (
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Seconds takes plain seconds or a Go duration; its errors do not echo the
// value.
func TestSeconds(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"15": 15 * time.Second, " 1.5 ": 1500 * time.Millisecond, "15s": 15 * time.Second, "1m30s": 90 * time.Second, "0": 0,
	} {
		var s Seconds
		require.NoError(t, s.UnmarshalText([]byte(in)), in)
		assert.Equal(t, want, s.D(), in)
	}
	for in, want := range map[string]string{
		"-1": "is out of range", "1e7": "is out of range", "-5s": "is negative", "soon": "is neither seconds (15) nor a duration (15s)",
	} {
		var s Seconds
		assert.EqualError(t, s.UnmarshalText([]byte(in)), want, in)
	}
}

// Under DurationMapper a time.Duration flag parses as a Seconds flag does.
func TestDurationMapper(t *testing.T) {
	var cli struct {
		Wait  time.Duration `name:"wait"`
		Every Seconds       `name:"every"`
	}
	k, err := kong.New(&cli, DurationMapper(), kong.Exit(func(int) {}))
	require.NoError(t, err)
	_, err = k.Parse([]string{"--wait", "15", "--every", "2m"})
	require.NoError(t, err)
	assert.Equal(t, 15*time.Second, cli.Wait)
	assert.Equal(t, 2*time.Minute, cli.Every.D())
	_, err = k.Parse([]string{"--wait=1h2x"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "is neither seconds (15) nor a duration (15s)")
}
