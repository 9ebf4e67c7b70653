package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/edgepoll/edgepoll/internal/cliflags"
	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/sinks"
	"github.com/edgepoll/edgepoll/sinks/route"
	"github.com/edgepoll/edgepoll/state/deadletter"
)

// Seconds is a duration flag: plain seconds ("15") or a Go duration.
type Seconds = cliflags.Seconds

// CLI is edgepoll's command line. Every flag can also be set from the
// environment: EDGEPOLL_<FLAG> unless a tag names another variable.
type CLI struct {
	APIURL string `name:"api-url" env:"ILERT_API_HOST" default:"https://api.ilert.com" help:"ilert API base URL." group:"ilert"`

	Mode string `name:"mode" aliases:"edge_mode" env:"EDGEPOLL_MODE" help:"Delivery target: ${modes} (required)." placeholder:"MODE" predictor:"mode" group:"Target"`

	// The targets' own flags: sinks.Shared (--topic) and each registered
	// target's configuration type (see targets.go).
	sinks.Shared `embed:""`
	kong.Plugins
	// Route is --filter and --transform (wrapped around the target).
	Route route.Options `embed:""`

	State                 string   `name:"state" env:"EDGEPOLL_STATE" default:"sqlite:edgepoll.db" help:"Cursor and lease store (and the default dead letter): ${state_forms}." predictor:"state" group:"State"`
	DeadLetter            string   `name:"dead-letter" default:"state" help:"Keep every item skipped as non-retryable, durably, before the cursor moves past it, so a refusing target (a typo'd URL, a rotated token) loses nothing: state (the default: in the state store itself, per connection), file:PATH (JSON lines), dynamodb:TABLE, or none (keep nothing, the reference agent's behaviour). If it cannot be written, the item is not skipped. See dead-letter list|replay." placeholder:"state|none|file:PATH|dynamodb:TABLE" group:"Delivery guards"`
	SkipLimit             int      `name:"skip-limit" default:"10" help:"Skip at most this many items refused in a row by the target (counted across runs); the next refusal fails the cycle instead. 0: no limit (the reference agent's behaviour)." group:"Delivery guards"`
	IlagentDB             string   `name:"ilagent-db" short:"f" aliases:"file" help:"Migrating from the reference agent: its SQLite file (ilagent's -f/--file; default ./ilagent.db3 when it exists, as ilagent's). While edgepoll has no cursor for the connection, a run starts from the agent's (read-only); a file that cannot be read fails the run. none: do not look." placeholder:"PATH|none" group:"State"`
	ConnectorKeyParameter string   `name:"connector-key-parameter" help:"Read the connector key from this SSM Parameter Store SecureString (instead of ILERT_EDGE_CONNECTOR_KEY)." group:"ilert"`
	ConnectorKeySecret    string   `name:"connector-key-secret" help:"Read the connector key from this Secrets Manager secret (id or ARN)." group:"ilert"`
	SecretFrom            []string `name:"secret-from" placeholder:"FLAG=ssm:NAME|secretsmanager:ID" help:"Read a secret option at start from AWS instead of the environment, e.g. kafka-password=secretsmanager:edgepoll/kafka or heartbeat=ssm:/edgepoll/heartbeat (an SSM SecureString parameter or a Secrets Manager secret: the value, or JSON with a field password, value or key). Comma-separated or repeated." group:"ilert"`

	Loop            bool    `name:"loop" help:"Run as a daemon: repeat cycles until SIGTERM/SIGINT." group:"Daemon" process:""`
	PollInterval    Seconds `name:"poll-interval" aliases:"edge_poll_interval" default:"10s" help:"Wait between cycles (5s..120s; plain seconds or a duration)." group:"Daemon"`
	StandbyInterval Seconds `name:"standby-interval" aliases:"edge_standby_interval" default:"10s" help:"HA standby poll interval (5s..120s)." group:"Daemon"`
	ClusterID       string  `name:"cluster-id" aliases:"edge_cluster_id" help:"Enable server-managed HA in this cluster." group:"Daemon"`
	InstanceID      string  `name:"instance-id" aliases:"edge_instance_id" help:"HA instance id (default: random). Its own progress (the last-processed-id it acknowledges) is kept in the state store per cluster and instance; a one-shot run acknowledges its last items with a final poll. Give scheduled one-shot runs a stable one (ilert keeps its role)." group:"Daemon"`
	Port            int     `name:"port" short:"p" help:"With --loop: serve /health, /ready and /metrics on this port." group:"Daemon" process:""`
	ListenAddr      string  `name:"listen-addr" help:"With --port: address to listen on (default: all interfaces)." group:"Daemon" process:""`
	MetricsFile     string  `name:"metrics-file" help:"One-shot: write Prometheus metrics in the node-exporter textfile format to this file at the end of the run." type:"path" group:"Daemon" process:""`
	Heartbeat       string  `name:"heartbeat" short:"b" env:"ILERT_HEARTBEAT_KEY" help:"ilert heartbeat key to ping (secret; prefer the environment)." group:"Daemon" secret:""`

	Verbose   int              `name:"verbose" short:"v" type:"counter" help:"More log detail (-v debug, -v -v everything)." group:"Logging" process:""`
	LogFormat string           `name:"log-format" default:"text" help:"Log format on stderr: text or json." predictor:"one-of:text,json" group:"Logging" process:""`
	Version   kong.VersionFlag `name:"version" env:"-" help:"Print the version and exit."`

	Config      string `name:"config" env:"EDGEPOLL_CONFIG" help:"YAML file declaring several connections, each with its key (key-env; several may share one: fan-out) and target; every flag's long name is a key (see docs/configuration.md)." type:"path" group:"Connections"`
	MaxParallel int    `name:"max-parallel" default:"4" help:"With --config: how many connections run a cycle at the same time." process:"" group:"Connections"`
	Connection  string `name:"connection" help:"With --config: only this connection of the file (for a run, state, check and dead-letter commands)." placeholder:"NAME" process:"" group:"Connections"`

	Commands `embed:""`

	// fleet is the validated --config file, one entry per connection.
	fleet []*fleetConn
	// targets are the registered targets' configurations, by mode (the
	// same values kong fills through Plugins).
	targets map[string]sinks.Target
	// key is a --config connection's connector key (from its key-env).
	key string
	// share is set on a --config connection that shares its connector key
	// with others (fan-out): its cursor is its own (poll.CursorID).
	share *keyShare
	// secrets are the values of every secret this process holds (secret
	// flags, connector keys): the script sink withholds them.
	secrets []string

	noTarget bool // the command delivers nothing: --mode is not required
}

// UsageError is a configuration error: exit 2.
type UsageError = cliflags.UsageError

// flagNamer names a flag the way the user set it (cliflags.Namer), and
// rewrites kong's and the targets' errors with those names.
type flagNamer struct{ cliflags.Namer }

func newFlagNamer(k *kong.Kong, args []string) flagNamer {
	return flagNamer{cliflags.NewNamer(k, args)}
}

// rewrite is cliflags.Namer.Rewrite, with a pointer for ilagent's daemon
// command, and the connector key among the values never shown.
func (n flagNamer) rewrite(msg string) string {
	return n.Rewrite(msg, map[string]string{"daemon": daemonHint}, os.Getenv("ILERT_EDGE_CONNECTOR_KEY"))
}

const daemonHint = "unexpected argument daemon: edgepoll has no daemon command; run `edgepoll --loop` with the same flags (an ilagent command line works with `ilagent daemon` replaced by `edgepoll --loop`)"

// configError names the flag of a target's *poll.ConfigError (whose Field
// is the flag's long name) the way the user set it.
func (n flagNamer) configError(err error) error {
	var ce *poll.ConfigError
	if errors.As(err, &ce) {
		return n.errf(ce.Field, "%s", ce.Msg)
	}
	return &UsageError{Msg: err.Error()}
}

func (n flagNamer) errf(flag, format string, args ...any) error {
	return &UsageError{Msg: n.Name(flag) + ": " + fmt.Sprintf(format, args...)}
}

// validate checks the whole configuration up front; nothing is polled or
// delivered when it fails.
func (c *CLI) validate(n flagNamer) error {
	u, err := url.Parse(c.APIURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return n.errf("api-url", "must be an absolute http(s) URL")
	}
	c.Mode = strings.ToLower(strings.TrimSpace(c.Mode))
	switch t := c.targets[c.Mode]; {
	case c.Mode == "" && c.noTarget:
	case c.Mode == "":
		return n.errf("mode", "is required (one of %s)", strings.Join(modes(), ", "))
	case t == nil:
		return n.errf("mode", "unknown mode %q (one of %s)", c.Mode, strings.Join(modes(), ", "))
	default:
		if err := t.Validate(c.Shared); err != nil {
			return n.configError(err)
		}
	}

	if err := c.Route.Compile(); err != nil {
		return n.configError(err)
	}
	if _, _, err := parseState(c.State); err != nil {
		return n.errf("state", "%v", err)
	}
	if _, _, err := deadletter.Parse(c.DeadLetter); err != nil {
		return n.errf("dead-letter", "%v", err)
	}
	if path, ok := deadletter.LocalFile(c.DeadLetter); ok {
		if dir := filepath.Dir(path); !cliflags.IsDir(dir) {
			return n.errf("dead-letter", "directory %s does not exist", dir)
		}
	}
	if c.SkipLimit < 0 {
		return n.errf("skip-limit", "must be 0 (no limit) or more")
	}
	if err := c.validateRun(n); err != nil {
		return err
	}
	return c.validateSafe(n)
}

// validateRun checks how the connection runs: the daemon's intervals, HA,
// endpoints and heartbeat, logging, --config's settings, the key's source.
func (c *CLI) validateRun(n flagNamer) error {
	if err := interval(c.PollInterval.D()); err != nil {
		return n.errf("poll-interval", "%v", err)
	}
	if err := interval(c.StandbyInterval.D()); err != nil {
		return n.errf("standby-interval", "%v", err)
	}
	if c.InstanceID != "" && c.ClusterID == "" {
		return n.errf("instance-id", "needs --cluster-id")
	}
	if c.Port != 0 {
		if c.Port < 1 || c.Port > 65535 {
			return n.errf("port", "must be 1..65535")
		}
		if !c.Loop {
			return n.errf("port", "only applies with --loop (health endpoints of the daemon)")
		}
	}
	if c.MetricsFile != "" && c.Loop {
		return n.errf("metrics-file", "applies to one-shot runs; with --loop use -p for /metrics")
	}
	if c.ListenAddr != "" && c.Port == 0 {
		return n.errf("listen-addr", "needs --port")
	}
	if c.ListenAddr != "" && net.ParseIP(strings.Trim(c.ListenAddr, "[]")) == nil && c.ListenAddr != "localhost" {
		return n.errf("listen-addr", "must be an IP address or localhost")
	}
	if c.Heartbeat != "" && (poll.ContainsControl(c.Heartbeat) || strings.ContainsAny(c.Heartbeat, "/?#% ")) {
		return n.errf("heartbeat", "is not a valid heartbeat key")
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return n.errf("log-format", "must be text or json")
	}
	if c.Connection != "" && c.Config == "" {
		return n.errf("connection", "needs --config")
	}
	if c.MaxParallel < 1 || c.MaxParallel > 1000 {
		return n.errf("max-parallel", "must be 1..1000")
	}
	if c.ConnectorKeyParameter != "" && c.ConnectorKeySecret != "" {
		return n.errf("connector-key-secret", "and --connector-key-parameter are mutually exclusive")
	}
	return nil
}

func interval(d time.Duration) error {
	if d < 5*time.Second || d > 120*time.Second {
		return fmt.Errorf("%s is out of range (5s..120s)", d)
	}
	return nil
}
