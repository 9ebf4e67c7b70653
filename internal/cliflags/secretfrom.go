package cliflags

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/edgepoll/edgepoll/poll"
)

// Fetch reads a secret from AWS: service "ssm" is an SSM SecureString
// parameter (name its name), "secretsmanager" a Secrets Manager secret
// (name its id or ARN: the value, or JSON with the first of fields it
// has). Its error never contains the secret.
type Fetch func(ctx context.Context, service, name string, fields ...string) (string, error)

// ResolveSecretFrom implements --secret-from FLAG=ssm:NAME|secretsmanager:ID:
// each named secret option (a flag of k marked secret:"", named by its long
// name or an alias) is read with fetch at start, so Lambda and containers
// need not carry it in their environment. A Secrets Manager secret may be
// the raw value or JSON with a field "password", "value" or "key". A
// mistake in refs is a *UsageError; a failed fetch is not.
func ResolveSecretFrom(ctx context.Context, k *kong.Kong, refs []string, fetch Fetch) error {
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
		v, err := fetch(ctx, service, id, "password", "value", "key")
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
