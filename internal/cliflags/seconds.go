package cliflags

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"
)

// Seconds is a duration flag that takes plain seconds ("15") or a Go
// duration ("15s", "1m30s"), like the reference agent's interval flags.
type Seconds time.Duration

// UnmarshalText implements encoding.TextUnmarshaler (used by kong). The
// error does not echo the value.
func (s *Seconds) UnmarshalText(b []byte) error {
	t := strings.TrimSpace(string(b))
	if n, err := strconv.ParseFloat(t, 64); err == nil {
		if n < 0 || n > 1e6 {
			return errors.New("is out of range")
		}
		*s = Seconds(time.Duration(n * float64(time.Second)))
		return nil
	}
	d, err := time.ParseDuration(t)
	if err != nil {
		return errors.New("is neither seconds (15) nor a duration (15s)")
	}
	if d < 0 {
		return errors.New("is negative")
	}
	*s = Seconds(d)
	return nil
}

// D is s as a time.Duration.
func (s Seconds) D() time.Duration { return time.Duration(s) }

// DurationMapper is the kong option under which every time.Duration flag
// takes what a Seconds flag takes: plain seconds or a Go duration.
func DurationMapper() kong.Option {
	return kong.TypeMapper(reflect.TypeOf(time.Duration(0)), kong.MapperFunc(func(ctx *kong.DecodeContext, target reflect.Value) error {
		var v string
		if err := ctx.Scan.PopValueInto("duration", &v); err != nil {
			return err
		}
		var s Seconds
		if err := s.UnmarshalText([]byte(v)); err != nil {
			return err
		}
		target.SetInt(int64(s))
		return nil
	}))
}
