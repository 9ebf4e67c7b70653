package awsjson

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
)

// defaultConfig resolves the region and credentials the way the AWS SDK
// does (environment, shared config and credentials files and profiles, web
// identity, SSO, container and instance roles).
func defaultConfig(ctx context.Context) (string, aws.CredentialsProvider, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return "", nil, err
	}
	return cfg.Region, cfg.Credentials, nil
}
