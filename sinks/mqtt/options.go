package mqtt

import (
	"context"
	"strings"
	"time"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/sinks"
	"github.com/edgepoll/edgepoll/sinks/internal/tlsconf"
)

// Registration makes --mode mqtt known to edgepoll.
var Registration = sinks.Registration{Mode: "mqtt", Lambda: true, Reads: []string{"topic"}, New: func() sinks.Target { return &Options{} }}

// Options are the mqtt target's flags (and --config keys); the topic is
// sinks.Shared's --topic.
type Options struct {
	Host           string        `name:"mqtt-host" short:"m" aliases:"mqtt_host" help:"mqtt: broker host (required for mqtt)." group:"MQTT"`
	Port           int           `name:"mqtt-port" short:"q" aliases:"mqtt_port" default:"1883" help:"mqtt: broker port." group:"MQTT"`
	QoS            int           `name:"mqtt-qos" aliases:"mqtt_qos" default:"0" predictor:"one-of:0,1,2" help:"mqtt: QoS 0, 1 or 2 (1 or 2: an item counts as delivered once the broker acknowledged it)." group:"MQTT"`
	Username       string        `name:"mqtt-username" aliases:"mqtt_username" help:"mqtt: user name." group:"MQTT"`
	Password       string        `name:"mqtt-password" aliases:"mqtt_password" env:"EDGEPOLL_MQTT_PASSWORD" help:"mqtt: password (secret; prefer the environment)." group:"MQTT" secret:""`
	TLS            bool          `name:"mqtt-tls" aliases:"mqtt_tls" help:"mqtt: connect with TLS." group:"MQTT"`
	CA             string        `name:"mqtt-ca" aliases:"mqtt_ca" help:"mqtt: CA certificate file (PEM); implies --mqtt-tls." type:"path" group:"MQTT"`
	Cert           string        `name:"mqtt-cert" aliases:"mqtt_client_cert" help:"mqtt: client certificate file (PEM) for mutual TLS." type:"path" group:"MQTT"`
	Key            string        `name:"mqtt-key" aliases:"mqtt_client_key" help:"mqtt: client key file (PEM) for mutual TLS." type:"path" group:"MQTT"`
	ClientID       string        `name:"mqtt-client-id" help:"mqtt: client id (default: edgepoll- and random hex, unique per run)." group:"MQTT"`
	Name           string        `name:"mqtt-name" short:"n" aliases:"mqtt_name" help:"mqtt: client id NAME-edge, as the reference agent names it (instead of --mqtt-client-id)." placeholder:"NAME" group:"MQTT"`
	ConnectTimeout time.Duration `name:"mqtt-connect-timeout" default:"10s" help:"mqtt: bound on connecting to the broker." group:"MQTT"`
}

func (o *Options) config(sh sinks.Shared) Config {
	id := o.ClientID
	if o.Name != "" {
		id = o.Name + "-edge"
	}
	return Config{Host: o.Host, Port: o.Port, Topic: sh.Topic, QoS: o.QoS, Username: o.Username, Password: o.Password,
		TLS: o.TLS, CAFile: o.CA, CertFile: o.Cert, KeyFile: o.Key, ConnectTimeout: o.ConnectTimeout, ClientID: id}
}

// Validate implements sinks.Target.
func (o *Options) Validate(sh sinks.Shared) error {
	if o.Name != "" {
		if o.ClientID != "" {
			return sinks.Problem("mqtt-name", "and --mqtt-client-id are mutually exclusive")
		}
		if poll.ContainsControl(o.Name) {
			return sinks.Problem("mqtt-name", "contains control characters")
		}
	}
	return o.config(sh).check()
}

// Open implements sinks.Target.
func (o *Options) Open(ctx context.Context, sh sinks.Shared, env sinks.Env) (poll.Sink, error) {
	return New(ctx, o.config(sh), env.Log)
}

// check is the one set of rules for a Config; problems name the flag.
func (c Config) check() error {
	switch {
	case c.Host == "":
		return sinks.Problem("mqtt-host", "is required with --mode mqtt")
	case c.Port < 1 || c.Port > 65535:
		return sinks.Problem("mqtt-port", "must be 1..65535")
	case c.QoS < 0 || c.QoS > 2:
		return sinks.Problem("mqtt-qos", "must be 0, 1 or 2")
	case c.Topic == "":
		return sinks.Problem("topic", "is required with --mode mqtt")
	case strings.ContainsAny(c.Topic, "+#\x00"):
		return sinks.Problem("topic", "must not contain the wildcards + or #")
	case poll.ContainsControl(c.Password):
		return sinks.Problem("mqtt-password", "contains control characters")
	case c.Password != "" && c.Username == "":
		return sinks.Problem("mqtt-password", "is set but --mqtt-username is not")
	case (c.CertFile == "") != (c.KeyFile == ""):
		return sinks.Problem("mqtt-cert", "--mqtt-cert and --mqtt-key go together")
	case poll.ContainsControl(c.ClientID):
		return sinks.Problem("mqtt-client-id", "contains control characters")
	case c.ConnectTimeout <= 0:
		return sinks.Problem("mqtt-connect-timeout", "must be positive")
	}
	for _, f := range []struct{ flag, path string }{{"mqtt-ca", c.CAFile}, {"mqtt-cert", c.CertFile}, {"mqtt-key", c.KeyFile}} {
		if err := sinks.ReadableFile(f.path); err != nil {
			return sinks.Problem(f.flag, err.Error())
		}
	}
	// The files are readable; a CA file without a certificate or a client pair
	// that does not load is a configuration error too, found before any poll.
	if _, err := tlsconf.Load("mqtt", c.CAFile, c.CertFile, c.KeyFile, ""); err != nil {
		return err
	}
	return nil
}
