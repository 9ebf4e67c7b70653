package awsjson

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cleanAWSEnv clears every variable the chain reads and points the shared
// files at dir.
func cleanAWSEnv(t *testing.T, dir string) {
	for _, v := range []string{"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
		"AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY", "AWS_SESSION_TOKEN",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS",
		"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"} {
		t.Setenv(v, "")
	}
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
}

func resolve(t *testing.T) (string, string, error) {
	t.Helper()
	region, p, err := defaultConfig(context.Background())
	if err != nil {
		return "", "", err
	}
	c, err := p.Retrieve(context.Background())
	return region, c.AccessKeyID + "/" + c.SecretAccessKey + "/" + c.SessionToken, err
}

func TestChainEnvironment(t *testing.T) {
	cleanAWSEnv(t, t.TempDir())
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	t.Setenv("AWS_SESSION_TOKEN", "tok")
	region, creds, err := resolve(t)
	require.NoError(t, err)
	assert.Equal(t, "eu-west-1", region)
	assert.Equal(t, "AKIDENV/s/tok", creds)
}

func TestChainProfiles(t *testing.T) {
	dir := t.TempDir()
	cleanAWSEnv(t, dir)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config"), []byte(`
[default]
region = us-west-2
[profile ops]
region=eu-central-1
[profile proc]
credential_process = `+filepath.Join(dir, "proc.sh")+`
[profile sso]
sso_session = corp
[profile chain]
role_arn = arn:aws:iam::1:role/x
source_profile = default
`), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "credentials"), []byte(`
# comment
[default]
aws_access_key_id = AKIDDEF
aws_secret_access_key = sdef
[ops]
aws_access_key_id = AKIDOPS
aws_secret_access_key = sops
`), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "proc.sh"), []byte("#!/bin/sh\n"+
		`echo '{"Version":1,"AccessKeyId":"AKIDPROC","SecretAccessKey":"sproc","SessionToken":"tproc"}'`+"\n"), 0o755))

	region, creds, err := resolve(t)
	require.NoError(t, err)
	assert.Equal(t, "us-west-2", region)
	assert.Equal(t, "AKIDDEF/sdef/", creds)

	t.Setenv("AWS_PROFILE", "ops")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDENV") // an explicit profile wins over the environment, as in the SDK
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	region, creds, err = resolve(t)
	require.NoError(t, err)
	assert.Equal(t, "eu-central-1", region)
	assert.Equal(t, "AKIDOPS/sops/", creds)

	t.Setenv("AWS_PROFILE", "proc")
	_, creds, err = resolve(t)
	require.NoError(t, err)
	assert.Equal(t, "AKIDPROC/sproc/tproc", creds)

	for _, p := range []string{"sso", "chain"} {
		t.Setenv("AWS_PROFILE", p)
		_, _, err = resolve(t)
		require.Error(t, err, p)
		assert.Contains(t, err.Error(), "export the credentials", p)
	}
	t.Setenv("AWS_PROFILE", "missing")
	_, _, err = resolve(t)
	assert.ErrorContains(t, err, `"missing" not found`)
}

func TestChainWebIdentity(t *testing.T) {
	dir := t.TempDir()
	cleanAWSEnv(t, dir)
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, r.ParseForm())
		if r.Form.Get("Action") != "AssumeRoleWithWebIdentity" || r.Form.Get("WebIdentityToken") != "jwt-token" ||
			r.Form.Get("RoleArn") != "arn:aws:iam::1:role/edgepoll" || r.Form.Get("RoleSessionName") != "sess" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = fmt.Fprint(w, `<ErrorResponse><Error><Code>InvalidIdentityToken</Code><Message>bad token</Message></Error></ErrorResponse>`)
			return
		}
		_, _ = fmt.Fprintf(w, `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIAWEB</AccessKeyId><SecretAccessKey>sweb</SecretAccessKey>
<SessionToken>tweb</SessionToken><Expiration>%s</Expiration></Credentials></AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>`, exp.Format(time.RFC3339))
	}))
	defer sts.Close()
	tok := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tok, []byte("jwt-token\n"), 0o600))
	t.Setenv("AWS_ENDPOINT_URL_STS", sts.URL)
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tok)
	t.Setenv("AWS_ROLE_ARN", "arn:aws:iam::1:role/edgepoll")
	t.Setenv("AWS_ROLE_SESSION_NAME", "sess")
	_, p, err := defaultConfig(context.Background())
	require.NoError(t, err)
	c, err := p.Retrieve(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "ASIAWEB/sweb/tweb", c.AccessKeyID+"/"+c.SecretAccessKey+"/"+c.SessionToken)
	assert.True(t, c.CanExpire)
	assert.Equal(t, exp, c.Expires.UTC())

	require.NoError(t, os.WriteFile(tok, []byte("other"), 0o600))
	_, p, err = defaultConfig(context.Background())
	require.NoError(t, err)
	_, err = p.Retrieve(context.Background())
	assert.ErrorContains(t, err, "InvalidIdentityToken: bad token")
}

func TestChainContainerEndpoint(t *testing.T) {
	dir := t.TempDir()
	cleanAWSEnv(t, dir)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "pod-token" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = fmt.Fprintf(w, `{"AccessKeyId":"ASIAPOD","SecretAccessKey":"spod","Token":"tpod","Expiration":%q}`,
			time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	}))
	defer srv.Close()
	tf := filepath.Join(dir, "pod-token")
	require.NoError(t, os.WriteFile(tf, []byte("pod-token"), 0o600))
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", srv.URL+"/creds")
	t.Setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", tf)
	_, creds, err := resolve(t)
	require.NoError(t, err)
	assert.Equal(t, "ASIAPOD/spod/tpod", creds)
}

func TestChainNothingConfigured(t *testing.T) {
	cleanAWSEnv(t, t.TempDir())
	_, _, err := defaultConfig(context.Background())
	assert.ErrorContains(t, err, "no AWS credentials found")
}
