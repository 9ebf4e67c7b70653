package dynalitetest

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

func TestStartAndCreateTable(t *testing.T) {
	s := Start(t)
	s.CreateTable(t, "edgepoll-test")
	out, err := s.Client.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String("edgepoll-test")})
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(out.Table.KeySchema[0].AttributeName); got != "pk" {
		t.Fatalf("key %q", got)
	}
}
