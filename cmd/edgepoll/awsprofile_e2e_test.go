package main

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/internal/dynalitetest"
	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/state/deadletter"
)

// fakeAWS is SSM (GetParameter) at the wire level plus a proxy to dynalite
// that records the access key id of every signed request, per service.
type fakeAWS struct {
	srv  *httptest.Server
	mu   sync.Mutex
	keys map[string]map[string]bool // service -> access key ids seen
}

var credentialRE = regexp.MustCompile(`Credential=([A-Z0-9]+)/`)

func newFakeAWS(t *testing.T, ddb *dynalitetest.Server, param, value string) *fakeAWS {
	f := &fakeAWS{keys: map[string]map[string]bool{}}
	u, err := url.Parse(ddb.Endpoint)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(u)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := r.Header.Get("X-Amz-Target")
		svc := "dynamodb"
		if strings.HasPrefix(target, "AmazonSSM.") {
			svc = "ssm"
		}
		if m := credentialRE.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
			f.mu.Lock()
			if f.keys[svc] == nil {
				f.keys[svc] = map[string]bool{}
			}
			f.keys[svc][m[1]] = true
			f.mu.Unlock()
		}
		if svc == "dynamodb" {
			proxy.ServeHTTP(w, r)
			return
		}
		var in struct{ Name string }
		_ = json.NewDecoder(r.Body).Decode(&in)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if target != "AmazonSSM.GetParameter" || in.Name != param {
			w.WriteHeader(400)
			_, _ = w.Write([]byte(`{"__type":"ParameterNotFound","message":"not found"}`))
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"Parameter": map[string]any{"Name": param, "Value": value}})
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAWS) keysOf(svc string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ks []string
	for k := range f.keys[svc] {
		ks = append(ks, k)
	}
	return ks
}

// awsProfileRun runs the real binary once with an AWS profile in a fresh
// HOME (config file written there) against dynalite and the fake SSM: the
// key from --connector-key-parameter, state and dead letter in DynamoDB;
// item 2 is refused (422) so the dead letter is written. It returns the
// fake for checking which credentials signed the calls.
func awsProfileRun(t *testing.T, home, config string, extraEnv ...string) *fakeAWS {
	t.Helper()
	ddb := dynalitetest.Start(t)
	ddb.CreateTable(t, "edgepoll-profile")
	f := newFakeAWS(t, ddb, "/edgepoll/key", e2eKey)
	require.NoError(t, os.MkdirAll(filepath.Join(home, ".aws"), 0o700))
	cfgFile := filepath.Join(home, ".aws", "config")
	require.NoError(t, os.WriteFile(cfgFile, []byte(config), 0o600))
	e := newEnv(t, 3)
	tg := newTarget(t)
	tg.setStatus(answer(http.StatusUnprocessableEntity, 2))
	env := baseEnv(append([]string{"ILERT_API_HOST=" + e.apiSv.URL, "HOME=" + home, "AWS_CONFIG_FILE=" + cfgFile,
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, ".aws", "credentials"), "AWS_PROFILE=ops",
		"AWS_ENDPOINT_URL_DYNAMODB=" + f.srv.URL, "AWS_ENDPOINT_URL_SSM=" + f.srv.URL, "AWS_EC2_METADATA_DISABLED=true"}, extraEnv...)...)
	r := runBin(t, env, "--mode", "http", "--http-url", tg.srv.URL, "--state", "dynamodb:edgepoll-profile",
		"--dead-letter", "dynamodb:edgepoll-profile", "--connector-key-parameter", "/edgepoll/key")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, []int64{1, 3}, tg.got())
	assert.NotContains(t, r.stderr, e2eKey)
	dl, err := deadletter.OpenDynamo(context.Background(), "edgepoll-profile", ddb.StoreClient())
	require.NoError(t, err)
	recs, err := dl.List(context.Background(), poll.ConnectionID(e2eKey))
	require.NoError(t, err)
	require.Len(t, recs, 1, "the refused item is in the DynamoDB dead letter")
	assert.Equal(t, int64(2), recs[0].ID)
	return f
}

// A profile that assumes a role from a source profile (source_profile +
// role_arn, the usual laptop set-up, refused before): STS AssumeRole (a
// wire-level fake at AWS_ENDPOINT_URL_STS) is called with the source
// profile's keys, and DynamoDB and SSM are signed with the role's.
func TestAWSAssumeRoleProfile(t *testing.T) {
	var assumed sync.Map
	sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		m := credentialRE.FindStringSubmatch(r.Header.Get("Authorization"))
		if form.Get("Action") != "AssumeRole" || form.Get("RoleArn") != "arn:aws:iam::123456789012:role/edgepoll" || m == nil || m[1] != "AKIDSOURCE" {
			w.WriteHeader(403)
			_, _ = w.Write([]byte(`<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>no</Message></Error></ErrorResponse>`))
			return
		}
		assumed.Store(form.Get("RoleSessionName"), true)
		w.Header().Set("Content-Type", "text/xml")
		_, _ = w.Write([]byte(`<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>
<Credentials><AccessKeyId>ASIAASSUMED</AccessKeyId><SecretAccessKey>role-secret</SecretAccessKey><SessionToken>role-token</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>
<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/edgepoll/s</Arn><AssumedRoleId>AROATEST:s</AssumedRoleId></AssumedRoleUser>
</AssumeRoleResult><ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata></AssumeRoleResponse>`))
	}))
	defer sts.Close()
	home := t.TempDir()
	f := awsProfileRun(t, home, `[profile base]
aws_access_key_id = AKIDSOURCE
aws_secret_access_key = source-secret
region = eu-central-1

[profile ops]
source_profile = base
role_arn = arn:aws:iam::123456789012:role/edgepoll
region = us-east-1
`, "AWS_ENDPOINT_URL_STS="+sts.URL)
	n := 0
	assumed.Range(func(any, any) bool { n++; return true })
	assert.Equal(t, 1, n, "one AssumeRole for every client of the run")
	assert.Equal(t, []string{"ASIAASSUMED"}, f.keysOf("dynamodb"))
	assert.Equal(t, []string{"ASIAASSUMED"}, f.keysOf("ssm"))
}

// An IAM Identity Center (SSO) profile with an sso-session and a cached
// token (as `aws sso login` leaves it in ~/.aws/sso/cache): the role
// credentials come from the SSO portal's GetRoleCredentials (a wire-level
// fake at AWS_ENDPOINT_URL_SSO) with that token.
func TestAWSSSOProfile(t *testing.T) {
	sso := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != "/federation/credentials" || q.Get("account_id") != "123456789012" || q.Get("role_name") != "EdgepollOps" ||
			r.Header.Get("X-Amz-Sso_bearer_token") != "cached-sso-token" {
			w.WriteHeader(401)
			_, _ = w.Write([]byte(`{"message":"unauthorized"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"roleCredentials":{"accessKeyId":"ASIASSO","secretAccessKey":"sso-secret","sessionToken":"sso-token","expiration":4070908800000}}`))
	}))
	defer sso.Close()
	home := t.TempDir()
	cache := filepath.Join(home, ".aws", "sso", "cache")
	require.NoError(t, os.MkdirAll(cache, 0o700))
	sum := sha1.Sum([]byte("corp"))
	require.NoError(t, os.WriteFile(filepath.Join(cache, hex.EncodeToString(sum[:])+".json"),
		[]byte(`{"accessToken":"cached-sso-token","expiresAt":"2099-01-01T00:00:00Z","region":"eu-west-1","startUrl":"https://corp.awsapps.com/start"}`), 0o600))
	f := awsProfileRun(t, home, `[profile ops]
sso_session = corp
sso_account_id = 123456789012
sso_role_name = EdgepollOps
region = us-east-1

[sso-session corp]
sso_start_url = https://corp.awsapps.com/start
sso_region = eu-west-1
`, "AWS_ENDPOINT_URL_SSO="+sso.URL)
	assert.Equal(t, []string{"ASIASSO"}, f.keysOf("dynamodb"))
	assert.Equal(t, []string{"ASIASSO"}, f.keysOf("ssm"))
}
