package script

import (
	"context"
	"time"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/sinks"
)

// Registration makes --mode script known to edgepoll.
var Registration = sinks.Registration{Mode: "script", New: func() sinks.Target { return &Options{} }}

// Options are the script target's flags (and --config keys).
type Options struct {
	Path    string        `name:"script" aliases:"edge_script" help:"script: path of an executable run once per item (required for script)." group:"Script"`
	Timeout time.Duration `name:"script-timeout" default:"30s" help:"script: timeout of one run; then its whole process group is killed." group:"Script"`
}

func (o *Options) config() Config { return Config{Path: o.Path, Timeout: o.Timeout} }

// Validate implements sinks.Target.
func (o *Options) Validate(sinks.Shared) error { return o.config().check() }

// Open implements sinks.Target.
func (o *Options) Open(_ context.Context, _ sinks.Shared, env sinks.Env) (poll.Sink, error) {
	cfg := o.config()
	cfg.Secrets = env.Secrets
	s, err := New(cfg, env.Log)
	if err != nil {
		return nil, err
	}
	return poll.OneByOne(s), nil
}

// check is the one set of rules for a Config; problems name the flag.
func (c Config) check() error {
	if c.Path == "" {
		return sinks.Problem("script", "is required with --mode script")
	}
	if err := executable(c.Path); err != nil {
		return sinks.Problem("script", err.Error())
	}
	if c.Timeout <= 0 {
		return sinks.Problem("script-timeout", "must be positive")
	}
	return nil
}
