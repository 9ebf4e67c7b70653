package main

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/edgepoll/edgepoll/internal/awsjson"
	"github.com/edgepoll/edgepoll/poll"
)

// fetchConnectorKey reads the connector key from SSM Parameter Store
// (--connector-key-parameter, a SecureString read WithDecryption) or Secrets
// Manager (--connector-key-secret: the SecretString is either the raw key or
// a JSON object with a field ILERT_EDGE_CONNECTOR_KEY or key). Region and
// credentials as in README "AWS access"; AWS_ENDPOINT_URL_SSM /
// AWS_ENDPOINT_URL_SECRETS_MANAGER override the endpoint. Errors never
// contain the key.
func fetchConnectorKey(ctx context.Context, cli *CLI) (string, error) {
	switch {
	case cli.ConnectorKeyParameter != "":
		key, err := fetchSecret(ctx, "ssm", cli.ConnectorKeyParameter)
		if err != nil {
			return "", fmt.Errorf("the connector key: %v", err)
		}
		return key, nil
	case cli.ConnectorKeySecret != "":
		key, err := fetchSecret(ctx, "secretsmanager", cli.ConnectorKeySecret, "ILERT_EDGE_CONNECTOR_KEY", "key")
		if err != nil {
			return "", fmt.Errorf("the connector key: %v", err)
		}
		return key, nil
	}
	return "", errors.New("no key source configured")
}

// fetchSecret reads an SSM SecureString parameter (service "ssm") or a
// Secrets Manager secret (awsjson.ReadParameter, awsjson.ReadSecret).
func fetchSecret(ctx context.Context, service, name string, fields ...string) (string, error) {
	if service == "ssm" {
		return awsjson.ReadParameter(ctx, name)
	}
	return awsjson.ReadSecret(ctx, name, fields...)
}

// resolveSecretFrom implements --secret-from FLAG=ssm:NAME|secretsmanager:ID:
// each named secret option (a flag marked secret:"", of edgepoll or of any
// target) is read from AWS at start, so Lambda and containers need not carry
// it in their environment. A Secrets Manager secret may be the raw value or
// JSON with a field "password", "value" or "key".
func resolveSecretFrom(ctx context.Context, k *kong.Kong, refs []string) error {
	for _, r := range refs {
		if strings.TrimSpace(r) == "" {
			continue
		}
		name, ref, ok := strings.Cut(strings.TrimSpace(r), "=")
		name = strings.TrimPrefix(name, "--")
		var flag *kong.Flag
		var secret []string
		for _, f := range k.Model.Flags {
			if !f.Tag.Has("secret") {
				continue
			}
			secret = append(secret, f.Name)
			if f.Name == name || slices.Contains(f.Aliases, name) {
				flag = f
			}
		}
		if !ok || flag == nil {
			return &UsageError{Msg: fmt.Sprintf("--secret-from: %q: want FLAG=ssm:NAME or FLAG=secretsmanager:ID, FLAG one of %s", r, strings.Join(secret, ", "))}
		}
		service, id, _ := strings.Cut(ref, ":")
		if (service != "ssm" && service != "secretsmanager") || strings.TrimSpace(id) == "" {
			return &UsageError{Msg: fmt.Sprintf("--secret-from: %s: want ssm:PARAMETER-NAME or secretsmanager:SECRET-ID", flag.Name)}
		}
		if flag.Target.Kind() != reflect.String {
			return &UsageError{Msg: "--secret-from: " + flag.Name + ": not a text option"}
		}
		if flag.Target.String() != "" {
			return &UsageError{Msg: "--secret-from: " + flag.Name + " is also given directly; use one"}
		}
		v, err := fetchSecret(ctx, service, id, "password", "value", "key")
		if err != nil {
			return fmt.Errorf("--secret-from %s: %v", flag.Name, err)
		}
		if poll.ContainsControl(v) {
			return &UsageError{Msg: "--secret-from " + flag.Name + ": the value contains control characters"}
		}
		flag.Target.SetString(v)
	}
	return nil
}
