package cliflags

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type secretCLI struct {
	Token     string `name:"http-auth-value" aliases:"auth_value" secret:""`
	Heartbeat string `name:"heartbeat" secret:""`
	Count     int    `name:"count" secret:""`
	Plain     string `name:"plain"`
}

// fakeFetch answers ssm:/hb and secretsmanager:tok; "ctl" holds a control
// character, anything else fails.
func fakeFetch(calls *[]string) Fetch {
	return func(_ context.Context, service, name string, fields ...string) (string, error) {
		*calls = append(*calls, service+":"+name)
		switch {
		case service == "ssm" && name == "/hb":
			return "hb-value", nil
		case service == "secretsmanager" && name == "tok" && len(fields) == 3 && fields[0] == "password":
			return "tok-value", nil
		case name == "ctl":
			return "a\nb", nil
		}
		return "", errors.New("ResourceNotFoundException")
	}
}

// ResolveSecretFrom sets each named secret flag from what fetch reads.
func TestResolveSecretFrom(t *testing.T) {
	var cli secretCLI
	k := mustParser(t, &cli)
	var calls []string
	require.NoError(t, ResolveSecretFrom(context.Background(), k, []string{" ", "--heartbeat=ssm:/hb", " auth_value=secretsmanager:tok "}, fakeFetch(&calls)))
	assert.Equal(t, "hb-value", cli.Heartbeat)
	assert.Equal(t, "tok-value", cli.Token)
	assert.Equal(t, []string{"ssm:/hb", "secretsmanager:tok"}, calls)
}

// A mistake in --secret-from is a *UsageError naming the flag, before
// anything is read; a failed read is not a UsageError.
func TestResolveSecretFromMistakes(t *testing.T) {
	for ref, want := range map[string]string{
		"plain=ssm:/x":          `--secret-from: "plain=ssm:/x": want FLAG=ssm:NAME or FLAG=secretsmanager:ID, FLAG one of http-auth-value, heartbeat, count`,
		"heartbeat":             `--secret-from: "heartbeat": want FLAG=ssm:NAME or FLAG=secretsmanager:ID, FLAG one of http-auth-value, heartbeat, count`,
		"heartbeat=vault:x":     "--secret-from: heartbeat: want ssm:PARAMETER-NAME or secretsmanager:SECRET-ID",
		"heartbeat=ssm: ":       "--secret-from: heartbeat: want ssm:PARAMETER-NAME or secretsmanager:SECRET-ID",
		"count=ssm:/n":          "--secret-from: count: not a text option",
		"http-auth-value=ssm:x": "--secret-from: http-auth-value is also given directly; use one",
		"heartbeat=ssm:ctl":     "--secret-from heartbeat: the value contains control characters",
	} {
		cli := secretCLI{Token: "given"}
		var calls []string
		err := ResolveSecretFrom(context.Background(), mustParser(t, &cli), []string{ref}, fakeFetch(&calls))
		assert.EqualError(t, err, want, ref)
		var ue *UsageError
		assert.True(t, errors.As(err, &ue), ref)
		assert.Empty(t, cli.Heartbeat, ref)
	}
	var cli secretCLI
	var calls []string
	err := ResolveSecretFrom(context.Background(), mustParser(t, &cli), []string{"heartbeat=secretsmanager:gone"}, fakeFetch(&calls))
	assert.EqualError(t, err, "--secret-from heartbeat: ResourceNotFoundException")
	var ue *UsageError
	assert.False(t, errors.As(err, &ue))
}
