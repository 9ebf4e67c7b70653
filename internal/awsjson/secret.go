package awsjson

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ReadParameter reads the SSM SecureString parameter name, decrypted
// (WithDecryption) and trimmed; an empty one is an error. Errors never
// contain the value.
func ReadParameter(ctx context.Context, name string) (string, error) {
	c, err := New(ctx, SSM, 3)
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

// ReadSecret reads the Secrets Manager secret id: its SecretString,
// trimmed, or when that is a JSON object its first non-empty string field
// among fields (ValueFromSecretString). Errors never contain the value.
func ReadSecret(ctx context.Context, id string, fields ...string) (string, error) {
	c, err := New(ctx, SecretsManager, 3)
	if err != nil {
		return "", err
	}
	var out struct{ SecretString *string }
	if err := c.Do(ctx, "GetSecretValue", map[string]any{"SecretId": id}, &out); err != nil {
		return "", fmt.Errorf("reading secret %q: %v", id, err)
	}
	if out.SecretString == nil {
		return "", fmt.Errorf("secret %q has no SecretString", id)
	}
	v, err := ValueFromSecretString(*out.SecretString, fields...)
	if err != nil {
		return "", fmt.Errorf("secret %q: %v", id, err)
	}
	return v, nil
}

// ValueFromSecretString accepts the raw value or a JSON object holding it
// in one of fields.
func ValueFromSecretString(s string, fields ...string) (string, error) {
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
