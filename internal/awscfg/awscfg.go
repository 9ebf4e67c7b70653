// Package awscfg loads the AWS configuration that edgepoll's DynamoDB, SSM
// and Secrets Manager clients share: the SDK's own default chain
// (config.LoadDefaultConfig), so everything the AWS CLI resolves works the
// same way here — environment keys, profiles (AWS_PROFILE) with
// source_profile/role_arn chains, credential_source, IAM Identity Center
// (SSO) sessions, credential_process, web identity (EKS IRSA), the
// container (ECS, EKS Pod Identity) and EC2 instance endpoints;
// AWS_MAX_ATTEMPTS and AWS_RETRY_MODE (or max_attempts / retry_mode in the
// profile); AWS_CA_BUNDLE; endpoint_url in a profile or its services
// section and AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE>.
package awscfg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go/logging"
)

// HTTPTimeout bounds one HTTP exchange with AWS (connecting, the request and
// reading the whole answer), whatever the caller's context allows: no call
// to AWS waits forever on a silent peer.
const HTTPTimeout = 30 * time.Second

var (
	mu     sync.Mutex
	cached struct {
		ok  bool
		env string
		cfg aws.Config
	}
)

// Load returns the AWS configuration of this process. It is loaded once and
// shared (one credentials cache: an assumed role or an SSO exchange is done
// once for every client), and loaded anew only when the AWS environment
// changed (tests).
func Load(ctx context.Context) (aws.Config, error) {
	env := awsEnv()
	mu.Lock()
	defer mu.Unlock()
	if cached.ok && cached.env == env {
		return cached.cfg, nil
	}
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(HTTPTimeout)),
		config.WithLogger(sdkLogger))
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading the AWS configuration: %v", err)
	}
	if cfg.Region == "" {
		return aws.Config{}, errors.New("no AWS region configured (set AWS_REGION, or region in the AWS profile)")
	}
	cached.ok, cached.env, cached.cfg = true, env, cfg
	return cfg, nil
}

// sdkLogger sends the SDK's own log lines (a response body that failed its
// checksum, a clock-skew warning) to edgepoll's log (slog.Default: text or
// JSON on stderr) instead of the SDK's plain lines on stderr.
var sdkLogger = logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
	level := slog.LevelWarn
	if c == logging.Debug {
		level = slog.LevelDebug
	}
	slog.Default().Log(context.Background(), level, "AWS SDK: "+fmt.Sprintf(format, v...))
})

// awsEnv is the part of the environment the configuration depends on.
func awsEnv() string {
	var vs []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "HOME=") {
			vs = append(vs, kv)
		}
	}
	slices.Sort(vs)
	return strings.Join(vs, "\x00")
}
