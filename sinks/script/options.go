package script

import (
	"context"
	"fmt"
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
	PassEnv []string      `name:"script-env" placeholder:"NAME" help:"script: hand this AWS credential variable (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_SECURITY_TOKEN, AWS_ROLE_ARN, AWS_ROLE_SESSION_NAME, AWS_WEB_IDENTITY_TOKEN_FILE, AWS_CONTAINER_*) to the script; none reaches it otherwise (repeatable, or comma-separated)." group:"Script"`
}

func (o *Options) config() Config {
	return Config{Path: o.Path, Timeout: o.Timeout, PassEnv: o.PassEnv}
}

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
	for _, n := range c.PassEnv {
		if !credentialVar(n) {
			return sinks.Problem("script-env", fmt.Sprintf("%q is not an AWS credential variable: every other variable reaches the script already", n))
		}
	}
	return nil
}
