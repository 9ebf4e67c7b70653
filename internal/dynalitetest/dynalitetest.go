// Package dynalitetest starts dynalite, a DynamoDB-compatible server (npm
// package, installed by scripts/test-deps.sh), for tests: in memory, on a
// free loopback port, killed at the end of the test.
package dynalitetest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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
	stderr   *testenv.SyncBuffer
	exited   chan struct{} // closed when the process has exited
	waitErr  error         // how it exited, set before exited is closed
	killed   bool          // by Kill, not on its own
}

// Kill stops the server.
func (s *Server) Kill() {
	select {
	case <-s.exited: // gone already (its pid may be another's by now)
	default:
		s.killed = true
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
}

// Died says, when the server exited on its own (a crash, the OOM killer,
// a kill from outside), how, with its stderr; else "".
func (s *Server) Died() string {
	select {
	case <-s.exited:
		if !s.killed {
			return fmt.Sprintf("dynalite on %s exited during the test (%v); its stderr:\n%s",
				s.Endpoint, s.waitErr, strings.TrimSpace(s.stderr.String()))
		}
	default:
	}
	return ""
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
	if shared != nil {
		if died := shared.Died(); died != "" {
			t.Fatal(died)
		}
	}
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
	t.Cleanup(func() {
		if died := s.Died(); died != "" {
			t.Error(died)
		}
		s.Kill()
	})
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
	// The port is free when picked but another process (another test
	// binary on the machine) may take it before dynalite listens: the
	// server says when it listens, or exits on EADDRINUSE and is started
	// again on another port, so a test never talks to someone else's.
	var s *Server
	var addr string
	for try := 1; s == nil; try++ {
		port := testenv.FreePort(t)
		addr = fmt.Sprintf("127.0.0.1:%d", port)
		var err error
		if s, err = listen(node, filepath.Dir(cli), port); err != nil {
			if try == 5 {
				t.Fatalf("dynalite on %s: %v", addr, err)
			}
			s = nil
		}
	}
	s.Endpoint = "http://" + addr
	s.Client = dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.Endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret", ""),
	})
	return s
}

// serverJS runs dynalite's module on loopback (its command line listens on
// every interface) and says "listening", or exits naming the listen error.
// dynalite throws, and so exits, when a request's 'error' is emitted, as
// it is when the client's connection closes before the request body has
// arrived: a test that SIGKILLs the edgepoll binary mid-request would kill
// the server too, and every later request would be refused. That one
// error (ECONNRESET, the client gone: nobody is left to answer) is
// ignored, as DynamoDB does; any other still throws.
const serverJS = `const s = require(process.argv[1])({createTableMs: 0, deleteTableMs: 0, updateTableMs: 0});
const [handler] = s.listeners("request");
s.removeAllListeners("request");
s.on("request", (req, res) => {
  const on = req.on;
  req.on = function (ev, fn) {
    if (ev !== "error") return on.apply(this, arguments);
    return on.call(this, ev, e => { if (e.code !== "ECONNRESET") fn(e) });
  };
  handler(req, res);
});
s.on("error", e => { console.error(e.message); process.exit(3) });
s.listen(+process.argv[2], "127.0.0.1", () => console.log("listening"))`

// listen starts dynalite on 127.0.0.1:port and waits until it listens.
func listen(node, module string, port int) (*Server, error) {
	cmd := exec.Command(node, "-e", serverJS, module, strconv.Itoa(port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s := &Server{cmd: cmd, stderr: &testenv.SyncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = s.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting dynalite: %v", err)
	}
	ready := make(chan bool, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- strings.TrimSpace(line) == "listening"
		_, _ = io.Copy(io.Discard, out)
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	select {
	case ok := <-ready:
		if ok {
			return s, nil
		}
	case <-time.After(20 * time.Second):
	}
	s.Kill()
	return nil, fmt.Errorf("dynalite did not listen: %s", strings.TrimSpace(s.stderr.String()))
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
