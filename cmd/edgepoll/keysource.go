package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/edgepoll/edgepoll/internal/awsjson"
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
		c, err := awsjson.New(ctx, awsjson.SSM, 3)
		if err != nil {
			return "", err
		}
		var out struct{ Parameter struct{ Value string } }
		in := map[string]any{"Name": cli.ConnectorKeyParameter, "WithDecryption": true}
		if err := c.Do(ctx, "GetParameter", in, &out); err != nil {
			return "", fmt.Errorf("reading the connector key from SSM parameter %q: %v", cli.ConnectorKeyParameter, err)
		}
		key := strings.TrimSpace(out.Parameter.Value)
		if key == "" {
			return "", fmt.Errorf("SSM parameter %q is empty", cli.ConnectorKeyParameter)
		}
		return key, nil
	case cli.ConnectorKeySecret != "":
		c, err := awsjson.New(ctx, awsjson.SecretsManager, 3)
		if err != nil {
			return "", err
		}
		var out struct{ SecretString *string }
		if err := c.Do(ctx, "GetSecretValue", map[string]any{"SecretId": cli.ConnectorKeySecret}, &out); err != nil {
			return "", fmt.Errorf("reading the connector key from secret %q: %v", cli.ConnectorKeySecret, err)
		}
		if out.SecretString == nil {
			return "", fmt.Errorf("secret %q has no SecretString", cli.ConnectorKeySecret)
		}
		key, err := keyFromSecretString(*out.SecretString)
		if err != nil {
			return "", fmt.Errorf("secret %q: %v", cli.ConnectorKeySecret, err)
		}
		return key, nil
	}
	return "", errors.New("no key source configured")
}

// keyFromSecretString accepts the raw key or a JSON object holding it in
// ILERT_EDGE_CONNECTOR_KEY or key.
func keyFromSecretString(s string) (string, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "{") {
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			return "", errors.New("SecretString looks like JSON but does not parse")
		}
		for _, f := range []string{"ILERT_EDGE_CONNECTOR_KEY", "key"} {
			if v, ok := m[f].(string); ok && strings.TrimSpace(v) != "" {
				return strings.TrimSpace(v), nil
			}
		}
		return "", errors.New(`SecretString JSON has no string field "ILERT_EDGE_CONNECTOR_KEY" or "key"`)
	}
	if s == "" {
		return "", errors.New("SecretString is empty")
	}
	return s, nil
}
