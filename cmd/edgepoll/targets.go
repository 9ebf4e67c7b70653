package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/edgepoll/edgepoll/poll"
	httpsink "github.com/edgepoll/edgepoll/sinks/http"
	kafkasink "github.com/edgepoll/edgepoll/sinks/kafka"
	mqttsink "github.com/edgepoll/edgepoll/sinks/mqtt"
	scriptsink "github.com/edgepoll/edgepoll/sinks/script"
	stdoutsink "github.com/edgepoll/edgepoll/sinks/stdout"
	"github.com/edgepoll/edgepoll/state/dynamo"
)

// openStore opens the --state backend.
func openStore(ctx context.Context, cli *CLI, log *slog.Logger) (poll.Store, error) {
	scheme, rest, err := parseState(cli.State)
	if err != nil {
		return nil, &UsageError{Msg: "--state: " + err.Error()}
	}
	if scheme == "dynamodb" {
		return dynamo.Open(ctx, rest, dynamo.Options{}, log)
	}
	return openLocalStore(ctx, scheme, rest, log)
}

// newSink builds the --mode target.
func newSink(ctx context.Context, cli *CLI, log *slog.Logger, stdout io.Writer) (poll.Sink, error) {
	switch cli.Mode {
	case "http":
		retry, err := retryStatuses(cli.HTTPRetryStatus)
		if err != nil {
			return nil, &UsageError{Msg: "--http-retry-status: " + err.Error()}
		}
		s, err := httpsink.New(httpsink.Config{
			URL: cli.HTTPURL, Method: cli.HTTPMethod, AuthHeader: cli.HTTPAuthHeader, AuthValue: cli.HTTPAuthValue,
			Timeout: cli.HTTPTimeout.D(), RetryStatus: retry,
		}, log)
		if err != nil {
			return nil, &UsageError{Msg: "--http-url: " + err.Error()}
		}
		return poll.OneByOne(s), nil
	case "script":
		s, err := scriptsink.New(scriptsink.Config{Path: cli.Script, Timeout: cli.ScriptTimeout.D()}, log)
		if err != nil {
			return nil, &UsageError{Msg: "--script: " + err.Error()}
		}
		return poll.OneByOne(s), nil
	case "stdout":
		return poll.OneByOne(stdoutsink.New(stdout)), nil
	case "kafka":
		return newKafkaSink(ctx, cli, log)
	case "mqtt":
		return newMQTTSink(ctx, cli, log)
	}
	return nil, &UsageError{Msg: fmt.Sprintf("--mode: unknown mode %q", cli.Mode)}
}

// kafkaFlags names the flag of each kafka.Config field.
var kafkaFlags = map[string]string{
	"Brokers": "--kafka-brokers", "Topic": "--topic", "CAFile": "--kafka-ca", "CertFile": "--kafka-cert",
	"KeyFile": "--kafka-key", "SASLMechanism": "--kafka-sasl-mechanism", "Username": "--kafka-username",
	"Password": "--kafka-password",
}

func newKafkaSink(_ context.Context, cli *CLI, log *slog.Logger) (poll.Sink, error) {
	s, err := kafkasink.New(kafkasink.Config{
		Brokers: splitList(cli.KafkaBrokers), Topic: cli.Topic, DeliveryTimeout: cli.KafkaDeliveryTimeout.D(),
		TLS: cli.KafkaTLS, CAFile: cli.KafkaCA, CertFile: cli.KafkaCert, KeyFile: cli.KafkaKey,
		SASLMechanism: cli.KafkaSASLMechanism, Username: cli.KafkaUsername, Password: cli.KafkaPassword,
	}, log)
	return s, usageFor(err, kafkaFlags)
}

// mqttFlags names the flag of each mqtt.Config field.
var mqttFlags = map[string]string{
	"Host": "--mqtt-host", "Port": "--mqtt-port", "Topic": "--topic", "QoS": "--mqtt-qos", "Password": "--mqtt-password",
	"CAFile": "--mqtt-ca", "CertFile": "--mqtt-cert", "KeyFile": "--mqtt-key",
}

func newMQTTSink(ctx context.Context, cli *CLI, log *slog.Logger) (poll.Sink, error) {
	s, err := mqttsink.New(ctx, mqttsink.Config{
		Host: cli.MQTTHost, Port: cli.MQTTPort, Topic: cli.Topic, QoS: cli.MQTTQoS,
		Username: cli.MQTTUsername, Password: cli.MQTTPassword,
		TLS: cli.MQTTTLS, CAFile: cli.MQTTCA, CertFile: cli.MQTTCert, KeyFile: cli.MQTTKey,
		ConnectTimeout: cli.MQTTConnectTimeout.D(), ClientID: cli.MQTTClientID,
	}, log)
	return s, usageFor(err, mqttFlags)
}

// usageFor turns a sink's ConfigError into a usage error (exit 2) naming the
// flag of the field; other errors pass through.
func usageFor(err error, flags map[string]string) error {
	var ce *poll.ConfigError
	if errors.As(err, &ce) {
		return &UsageError{Msg: flags[ce.Field] + ": " + ce.Msg}
	}
	return err
}
