package kafka

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/sinks"
	"github.com/edgepoll/edgepoll/sinks/internal/tlsconf"
)

// Registration makes --mode kafka known to edgepoll.
var Registration = sinks.Registration{Mode: "kafka", Lambda: true, Reads: []string{"topic"}, New: func() sinks.Target { return &Options{} }}

// Options are the kafka target's flags (and --config keys); the topic is
// sinks.Shared's --topic.
type Options struct {
	Brokers         string        `name:"kafka-brokers" aliases:"kafka_brokers" help:"kafka: comma-separated host:port list (required for kafka)." group:"Kafka"`
	TLS             bool          `name:"kafka-tls" help:"kafka: connect with TLS." group:"Kafka"`
	CA              string        `name:"kafka-ca" help:"kafka: CA certificate file (PEM) for TLS; implies --kafka-tls." type:"path" group:"Kafka"`
	Cert            string        `name:"kafka-cert" help:"kafka: client certificate file (PEM) for mutual TLS." type:"path" group:"Kafka"`
	Key             string        `name:"kafka-key" help:"kafka: client key file (PEM) for mutual TLS." type:"path" group:"Kafka"`
	SASLMechanism   string        `name:"kafka-sasl-mechanism" help:"kafka: SASL mechanism: plain, scram-sha-256 or scram-sha-512." group:"Kafka"`
	Username        string        `name:"kafka-username" help:"kafka: SASL user name." group:"Kafka"`
	Password        string        `name:"kafka-password" env:"EDGEPOLL_KAFKA_PASSWORD" help:"kafka: SASL password (secret; prefer the environment)." group:"Kafka" secret:""`
	DeliveryTimeout time.Duration `name:"kafka-delivery-timeout" default:"30s" help:"kafka: how long a record may take to be acknowledged before the cycle fails." group:"Kafka"`
}

func (o *Options) config(sh sinks.Shared) Config {
	return Config{Brokers: sinks.SplitList(o.Brokers), Topic: sh.Topic, DeliveryTimeout: o.DeliveryTimeout,
		TLS: o.TLS, CAFile: o.CA, CertFile: o.Cert, KeyFile: o.Key,
		SASLMechanism: o.SASLMechanism, Username: o.Username, Password: o.Password}
}

// Validate implements sinks.Target.
func (o *Options) Validate(sh sinks.Shared) error { return o.config(sh).check() }

// Open implements sinks.Target.
func (o *Options) Open(_ context.Context, sh sinks.Shared, env sinks.Env) (poll.Sink, error) {
	return New(o.config(sh), env.Log)
}

// check is the one set of rules for a Config; problems name the flag.
func (c Config) check() error {
	if len(c.Brokers) == 0 {
		return sinks.Problem("kafka-brokers", "is required with --mode kafka")
	}
	for _, b := range c.Brokers {
		if err := sinks.HostPort(b); err != nil {
			return sinks.Problem("kafka-brokers", fmt.Sprintf("%q: %v", b, err))
		}
	}
	if c.Topic == "" {
		return sinks.Problem("topic", "is required with --mode kafka")
	}
	switch strings.ToLower(c.SASLMechanism) {
	case "", "plain", "scram-sha-256", "scram-sha-512":
	default:
		return sinks.Problem("kafka-sasl-mechanism", "must be plain, scram-sha-256 or scram-sha-512")
	}
	if poll.ContainsControl(c.Password) {
		return sinks.Problem("kafka-password", "contains control characters")
	}
	if c.SASLMechanism != "" && (c.Username == "" || c.Password == "") {
		return sinks.Problem("kafka-sasl-mechanism", "needs --kafka-username and --kafka-password (or EDGEPOLL_KAFKA_PASSWORD)")
	}
	if c.SASLMechanism == "" && (c.Username != "" || c.Password != "") {
		return sinks.Problem("kafka-username", "needs --kafka-sasl-mechanism")
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return sinks.Problem("kafka-cert", "--kafka-cert and --kafka-key go together")
	}
	for _, f := range []struct{ flag, path string }{{"kafka-ca", c.CAFile}, {"kafka-cert", c.CertFile}, {"kafka-key", c.KeyFile}} {
		if err := sinks.ReadableFile(f.path); err != nil {
			return sinks.Problem(f.flag, err.Error())
		}
	}
	// The files are readable; a CA file without a certificate or a client pair
	// that does not load is a configuration error too, found before any poll.
	if _, err := tlsconf.Load("kafka", c.CAFile, c.CertFile, c.KeyFile, ""); err != nil {
		return err
	}
	if c.DeliveryTimeout <= 0 {
		return sinks.Problem("kafka-delivery-timeout", "must be positive")
	}
	return nil
}
