package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/alecthomas/kong"

	"github.com/edgepoll/edgepoll/internal/awsjson"
	"github.com/edgepoll/edgepoll/internal/cliflags"
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

// resolveSecretFrom is cliflags.ResolveSecretFrom reading from AWS
// (fetchSecret): --secret-from FLAG=ssm:NAME|secretsmanager:ID.
func resolveSecretFrom(ctx context.Context, k *kong.Kong, refs []string) error {
	return cliflags.ResolveSecretFrom(ctx, k, refs, fetchSecret)
}
