// Package dynalitetest starts dynalite, a DynamoDB-compatible server (npm
// package, installed by scripts/test-deps.sh), for tests: in memory, on a
// free loopback port, killed at the end of the test.
package dynalitetest

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/edgepoll/edgepoll/internal/testenv"
)

// Server is a running dynalite.
type Server struct {
	Endpoint string // http://127.0.0.1:PORT
	Client   *dynamodb.Client
	cmd      *exec.Cmd
}

// Kill stops the server.
func (s *Server) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

var (
	sharedMu sync.Mutex
	shared   *Server
)

// Shared returns one server for the whole test binary (started on first
// use); the package's TestMain calls StopShared after m.Run.
func Shared(t testing.TB) *Server {
	t.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil {
		shared = start(t)
	}
	return shared
}

// StopShared stops the shared server, if any.
func StopShared() {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared != nil {
		shared.Kill()
		shared = nil
	}
}

// Env are the environment variables that point the AWS SDK (and so the
// edgepoll binary) at this server with fake credentials.
func (s *Server) Env() []string {
	return []string{
		"AWS_ENDPOINT_URL_DYNAMODB=" + s.Endpoint,
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=AKIDTEST",
		"AWS_SECRET_ACCESS_KEY=test-secret",
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// Start starts dynalite for t (failing or skipping per testenv when it is
// not installed).
func Start(t testing.TB) *Server {
	t.Helper()
	s := start(t)
	t.Cleanup(s.Kill)
	return s
}

func start(t testing.TB) *Server {
	t.Helper()
	bin := testenv.LookPath(t, "dynalite", "bash scripts/test-deps.sh", ".tools/dynalite/node_modules/.bin/dynalite")
	node := testenv.LookPath(t, "node", "apt-get install nodejs (scripts/test-deps.sh)")
	// dynalite's command line listens on every interface; its module is
	// started here on loopback only.
	cli, err := filepath.EvalSymlinks(bin)
	if err != nil {
		t.Fatalf("dynalite: %v", err)
	}
	port := testenv.FreePort(t)
	cmd := exec.Command(node, "-e", `require(process.argv[1])({createTableMs: 0, deleteTableMs: 0, updateTableMs: 0}).listen(+process.argv[2], "127.0.0.1")`,
		filepath.Dir(cli), strconv.Itoa(port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting dynalite: %v", err)
	}
	s := &Server{cmd: cmd}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			s.Kill()
			t.Fatalf("dynalite did not listen on %s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Endpoint = "http://" + addr
	s.Client = dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.Endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret", ""),
	})
	return s
}

// StoreClient is a client for edgepoll's DynamoDB backend (state/dynamo's
// Options.Client) talking to this server with the fake credentials.
func (s *Server) StoreClient() *dynamodb.Client { return s.Client }

// CreateTable creates a table with the string partition key pk and waits
// until it is active.
func (s *Server) CreateTable(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := s.Client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatalf("creating table %s: %v", name, err)
	}
	w := dynamodb.NewTableExistsWaiter(s.Client, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 50 * time.Millisecond
		o.MaxDelay = 200 * time.Millisecond
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, 15*time.Second); err != nil {
		t.Fatalf("waiting for table %s: %v", name, err)
	}
}
