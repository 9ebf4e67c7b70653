package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"
)

// fetchConnectorKey reads the connector key from SSM Parameter Store
// (--connector-key-parameter, a SecureString read WithDecryption) or Secrets
// Manager (--connector-key-secret: the SecretString is either the raw key or
// a JSON object with a field ILERT_EDGE_CONNECTOR_KEY or key). It uses the
// AWS SDK's default configuration (region, credentials, and endpoint
// overrides such as AWS_ENDPOINT_URL_SSM). Errors never contain the key.
func fetchConnectorKey(ctx context.Context, cli *CLI) (string, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return "", fmt.Errorf("loading the AWS configuration: %v", err)
	}
	var key string
	switch {
	case cli.ConnectorKeyParameter != "":
		out, err := ssm.NewFromConfig(cfg).GetParameter(ctx, &ssm.GetParameterInput{
			Name:           aws.String(cli.ConnectorKeyParameter),
			WithDecryption: aws.Bool(true),
		})
		if err != nil {
			return "", fmt.Errorf("reading the connector key from SSM parameter %q: %s", cli.ConnectorKeyParameter, awsErr(err))
		}
		if out.Parameter != nil && out.Parameter.Value != nil {
			key = strings.TrimSpace(*out.Parameter.Value)
		}
		if key == "" {
			return "", fmt.Errorf("SSM parameter %q is empty", cli.ConnectorKeyParameter)
		}
	case cli.ConnectorKeySecret != "":
		out, err := secretsmanager.NewFromConfig(cfg).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
			SecretId: aws.String(cli.ConnectorKeySecret),
		})
		if err != nil {
			return "", fmt.Errorf("reading the connector key from secret %q: %s", cli.ConnectorKeySecret, awsErr(err))
		}
		if out.SecretString == nil {
			return "", fmt.Errorf("secret %q has no SecretString", cli.ConnectorKeySecret)
		}
		key, err = keyFromSecretString(*out.SecretString)
		if err != nil {
			return "", fmt.Errorf("secret %q: %v", cli.ConnectorKeySecret, err)
		}
	default:
		return "", errors.New("no key source configured")
	}
	return key, nil
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

// awsErr renders an AWS error by its code and message only.
func awsErr(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode() + ": " + ae.ErrorMessage()
	}
	var oe *smithy.OperationError
	if errors.As(err, &oe) {
		return oe.Err.Error()
	}
	return err.Error()
}
