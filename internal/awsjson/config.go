package awsjson

import (
	"bufio"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"
	"github.com/aws/aws-sdk-go-v2/credentials/processcreds"
)

// defaultConfig resolves the region and credentials like the AWS SDK's
// default chain, for the sources a server process uses:
//
//   - static keys in the environment (AWS_ACCESS_KEY_ID,
//     AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN: Lambda, docker -e);
//   - web identity (AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN: EKS IRSA),
//     exchanged with STS AssumeRoleWithWebIdentity;
//   - the profile (AWS_PROFILE, else default) of the shared files
//     ~/.aws/credentials and ~/.aws/config (AWS_SHARED_CREDENTIALS_FILE,
//     AWS_CONFIG_FILE): static keys, credential_process,
//     web_identity_token_file with role_arn, and region;
//   - the container endpoint (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or
//     _FULL_URI with AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]: ECS, EKS Pod
//     Identity);
//   - the EC2 instance role (IMDS; AWS_EC2_METADATA_DISABLED=true skips it).
//
// A profile that needs an STS AssumeRole chain or AWS SSO is refused with
// a clear error (the SDK's config package resolves those, but it links
// four more service clients whose tables cost every start of edgepoll
// ~1.5 ms and the binary ~1 MB); export such credentials to the
// environment or use credential_process.
func defaultConfig(ctx context.Context) (string, aws.CredentialsProvider, error) {
	profileName := firstEnv("AWS_PROFILE", "AWS_DEFAULT_PROFILE")
	explicitProfile := profileName != ""
	if profileName == "" {
		profileName = "default"
	}
	prof, err := loadProfile(profileName)
	if err != nil {
		return "", nil, err
	}
	region := firstEnv("AWS_REGION", "AWS_DEFAULT_REGION")
	if region == "" {
		region = prof["region"]
	}
	p, err := credentialsProvider(prof, profileName, explicitProfile, region)
	if err != nil {
		return "", nil, err
	}
	return region, aws.NewCredentialsCache(p), nil
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := strings.TrimSpace(os.Getenv(n)); v != "" {
			return v
		}
	}
	return ""
}

func credentialsProvider(prof map[string]string, name string, explicitProfile bool, region string) (aws.CredentialsProvider, error) {
	if !explicitProfile {
		if id := firstEnv("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY"); id != "" {
			secret := firstEnv("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY")
			if secret == "" {
				return nil, errors.New("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
			}
			return credentials.NewStaticCredentialsProvider(id, secret, os.Getenv("AWS_SESSION_TOKEN")), nil
		}
		if tf := os.Getenv("AWS_WEB_IDENTITY_TOKEN_FILE"); tf != "" {
			return webIdentity(tf, os.Getenv("AWS_ROLE_ARN"), os.Getenv("AWS_ROLE_SESSION_NAME"), region)
		}
	}
	for _, k := range []string{"sso_session", "sso_start_url", "login_session", "source_profile", "credential_source"} {
		if prof[k] != "" {
			return nil, fmt.Errorf("AWS profile %q uses %s, which edgepoll does not resolve: export the credentials to the environment (aws configure export-credentials --format env) or use credential_process", name, k)
		}
	}
	switch {
	case prof["aws_access_key_id"] != "":
		if prof["aws_secret_access_key"] == "" {
			return nil, fmt.Errorf("AWS profile %q has aws_access_key_id but no aws_secret_access_key", name)
		}
		return credentials.NewStaticCredentialsProvider(prof["aws_access_key_id"], prof["aws_secret_access_key"], prof["aws_session_token"]), nil
	case prof["web_identity_token_file"] != "":
		return webIdentity(prof["web_identity_token_file"], prof["role_arn"], prof["role_session_name"], region)
	case prof["role_arn"] != "":
		return nil, fmt.Errorf("AWS profile %q assumes a role without a web identity, which edgepoll does not resolve: export the credentials to the environment or use credential_process", name)
	case prof["credential_process"] != "":
		return processcreds.NewProvider(prof["credential_process"]), nil
	}
	if explicitProfile && len(prof) == 0 {
		return nil, fmt.Errorf("AWS profile %q not found in the shared config or credentials file", name)
	}
	if p := containerProvider(); p != nil {
		return p, nil
	}
	if strings.EqualFold(os.Getenv("AWS_EC2_METADATA_DISABLED"), "true") {
		return nil, errors.New("no AWS credentials found (environment, shared files, container endpoint; the EC2 instance metadata is disabled)")
	}
	return ec2rolecreds.New(), nil
}

// containerProvider is the ECS / EKS Pod Identity credentials endpoint, or
// nil when none is configured.
func containerProvider() aws.CredentialsProvider {
	u := os.Getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI")
	if rel := os.Getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"); rel != "" {
		u = "http://169.254.170.2" + rel
	}
	if u == "" {
		return nil
	}
	return endpointcreds.New(u, func(o *endpointcreds.Options) {
		if f := os.Getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"); f != "" {
			o.AuthorizationTokenProvider = endpointcreds.TokenProviderFunc(func() (string, error) {
				b, err := os.ReadFile(f)
				return strings.TrimSpace(string(b)), err
			})
		} else {
			o.AuthorizationToken = os.Getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN")
		}
	})
}

// loadProfile reads one profile's keys: from the config file ([default] or
// [profile NAME]), overridden by the credentials file ([NAME]). Missing
// files are no error.
func loadProfile(name string) (map[string]string, error) {
	home, _ := os.UserHomeDir()
	cfgFile := os.Getenv("AWS_CONFIG_FILE")
	if cfgFile == "" {
		cfgFile = filepath.Join(home, ".aws", "config")
	}
	credFile := os.Getenv("AWS_SHARED_CREDENTIALS_FILE")
	if credFile == "" {
		credFile = filepath.Join(home, ".aws", "credentials")
	}
	prof := map[string]string{}
	sections := []string{"profile " + name}
	if name == "default" {
		sections = append(sections, "default")
	}
	if err := readINI(cfgFile, sections, prof); err != nil {
		return nil, err
	}
	if err := readINI(credFile, []string{name}, prof); err != nil {
		return nil, err
	}
	return prof, nil
}

// readINI adds the keys of the named sections of an AWS shared file to
// into (later values win).
func readINI(path string, sections []string, into map[string]string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("AWS shared file: %v", err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			sec := strings.Join(strings.Fields(strings.Trim(line, "[]")), " ")
			in = false
			for _, s := range sections {
				in = in || sec == s
			}
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && in {
			into[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
	}
	return sc.Err()
}

// webIdentity exchanges the token in tokenFile for role credentials with
// STS AssumeRoleWithWebIdentity (an unsigned call), refreshed before they
// expire by the credentials cache.
func webIdentity(tokenFile, roleARN, session, region string) (aws.CredentialsProvider, error) {
	if roleARN == "" {
		return nil, errors.New("a web identity token file is configured but no role ARN (AWS_ROLE_ARN)")
	}
	if session == "" {
		session = fmt.Sprintf("edgepoll-%d", time.Now().UnixNano())
	}
	ep := firstEnv("AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL")
	if ep == "" || strings.EqualFold(os.Getenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"), "true") {
		ep = "https://sts.amazonaws.com"
		if region != "" {
			ep, _ = endpoint(Service{SigningName: "sts", EnvName: "STS"}, region)
		}
	}
	return aws.CredentialsProviderFunc(func(ctx context.Context) (aws.Credentials, error) {
		token, err := os.ReadFile(tokenFile)
		if err != nil {
			return aws.Credentials{}, fmt.Errorf("web identity token: %v", err)
		}
		form := url.Values{"Action": {"AssumeRoleWithWebIdentity"}, "Version": {"2011-06-15"},
			"RoleArn": {roleARN}, "RoleSessionName": {session}, "WebIdentityToken": {strings.TrimSpace(string(token))}}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(ep, "/")+"/", strings.NewReader(form.Encode()))
		if err != nil {
			return aws.Credentials{}, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return aws.Credentials{}, fmt.Errorf("STS AssumeRoleWithWebIdentity: %v", err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return aws.Credentials{}, fmt.Errorf("STS AssumeRoleWithWebIdentity: %v", err)
		}
		var out struct {
			Credentials struct {
				AccessKeyID     string    `xml:"AccessKeyId"`
				SecretAccessKey string    `xml:"SecretAccessKey"`
				SessionToken    string    `xml:"SessionToken"`
				Expiration      time.Time `xml:"Expiration"`
			} `xml:"AssumeRoleWithWebIdentityResult>Credentials"`
			Error struct{ Code, Message string } `xml:"Error"`
		}
		_ = xml.Unmarshal(body, &out)
		if resp.StatusCode != http.StatusOK || out.Credentials.AccessKeyID == "" {
			if out.Error.Code == "" {
				out.Error.Code = resp.Status
			}
			return aws.Credentials{}, fmt.Errorf("STS AssumeRoleWithWebIdentity: %s: %s", out.Error.Code, out.Error.Message)
		}
		c := out.Credentials
		return aws.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken,
			Source: "WebIdentity", CanExpire: true, Expires: c.Expiration}, nil
	}), nil
}
