package main

import (
	"context"
	"encoding/json"
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

// fetchSecret reads an SSM SecureString parameter (decrypted) or a Secrets
// Manager secret; a SecretString that is a JSON object yields its first
// non-empty string field among fields. The value is trimmed; errors never
// contain it.
func fetchSecret(ctx context.Context, service, name string, fields ...string) (string, error) {
	if service == "ssm" {
		c, err := awsjson.New(ctx, awsjson.SSM, 3)
		if err != nil {
			return "", err
		}
		var out struct{ Parameter struct{ Value string } }
		if err := c.Do(ctx, "GetParameter", map[string]any{"Name": name, "WithDecryption": true}, &out); err != nil {
			return "", fmt.Errorf("reading SSM parameter %q: %v", name, err)
		}
		if v := strings.TrimSpace(out.Parameter.Value); v != "" {
			return v, nil
		}
		return "", fmt.Errorf("SSM parameter %q is empty", name)
	}
	c, err := awsjson.New(ctx, awsjson.SecretsManager, 3)
	if err != nil {
		return "", err
	}
	var out struct{ SecretString *string }
	if err := c.Do(ctx, "GetSecretValue", map[string]any{"SecretId": name}, &out); err != nil {
		return "", fmt.Errorf("reading secret %q: %v", name, err)
	}
	if out.SecretString == nil {
		return "", fmt.Errorf("secret %q has no SecretString", name)
	}
	v, err := valueFromSecretString(*out.SecretString, fields...)
	if err != nil {
		return "", fmt.Errorf("secret %q: %v", name, err)
	}
	return v, nil
}

// valueFromSecretString accepts the raw value or a JSON object holding it in
// one of fields.
func valueFromSecretString(s string, fields ...string) (string, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "{") {
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			return "", errors.New("SecretString looks like JSON but does not parse")
		}
		for _, f := range fields {
			if v, ok := m[f].(string); ok && strings.TrimSpace(v) != "" {
				return strings.TrimSpace(v), nil
			}
		}
		return "", fmt.Errorf("SecretString JSON has no string field %q", strings.Join(fields, `" or "`))
	}
	if s == "" {
		return "", errors.New("SecretString is empty")
	}
	return s, nil
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
