package dynalitetest

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/edgepoll/edgepoll/internal/testenv"
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

// dynalite listens on loopback only, never on every interface.
func TestListensOnLoopbackOnly(t *testing.T) {
	s := Start(t)
	_, portStr, _ := strings.Cut(strings.TrimPrefix(s.Endpoint, "http://"), ":")
	port, _ := strconv.Atoi(portStr)
	want := fmt.Sprintf(":%04X", port)
	var listening []string
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) > 3 && fields[3] == "0A" && strings.HasSuffix(fields[1], want) { // LISTEN
				listening = append(listening, fields[1])
			}
		}
	}
	if len(listening) == 0 {
		testenv.Missing(t, "a listening socket in /proc/net/tcp*", "a Linux /proc")
	}
	for _, addr := range listening {
		if addr != "0100007F"+want {
			t.Errorf("dynalite listens on %s (hex), not 127.0.0.1", addr)
		}
	}
}

// A port taken between FreePort and dynalite's listen (another process) is
// reported as not listening, never mistaken for a running server: Start
// then tries another port.
func TestTakenPortIsNotOurs(t *testing.T) {
	bin := testenv.LookPath(t, "dynalite", "bash scripts/test-deps.sh", ".tools/dynalite/node_modules/.bin/dynalite")
	node := testenv.LookPath(t, "node", "apt-get install nodejs (scripts/test-deps.sh)")
	cli, err := filepath.EvalSymlinks(bin)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s, err := listen(node, filepath.Dir(cli), l.Addr().(*net.TCPAddr).Port)
	if err == nil {
		s.Kill()
		t.Fatal("dynalite reported listening on a port someone else holds")
	}
	if !strings.Contains(err.Error(), "EADDRINUSE") {
		t.Fatalf("error %q does not name EADDRINUSE", err)
	}
}

// A client that dies mid-request (a test SIGKILLs the edgepoll binary while
// it sends to DynamoDB) leaves the server up: dynalite's own handler throws
// on the request's error, which used to end the process and have every
// later request refused.
func TestClientGoneMidRequestLeavesServerUp(t *testing.T) {
	s := Start(t)
	c, err := net.Dial("tcp", strings.TrimPrefix(s.Endpoint, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.0\r\n"+
		"X-Amz-Target: DynamoDB_20120810.ListTables\r\nContent-Length: 100\r\n\r\n{\"Limit\":")
	if err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).SetLinger(0) // a reset, as a killed process's unread socket sends
	_ = c.Close()
	// The reset reaches the server before these requests; the second is
	// read only after the server has handled everything that came before
	// the first (the reset included).
	for i := 0; i < 2; i++ {
		if _, err := s.Client.ListTables(context.Background(), &dynamodb.ListTablesInput{}); err != nil {
			t.Fatalf("after a client went away mid-request: %v\n%s", err, s.Died())
		}
	}
}

// A server that exits on its own (not by Kill) says so, with its stderr.
func TestDiedReportsAnExitNotByKill(t *testing.T) {
	bin := testenv.LookPath(t, "dynalite", "bash scripts/test-deps.sh", ".tools/dynalite/node_modules/.bin/dynalite")
	node := testenv.LookPath(t, "node", "apt-get install nodejs (scripts/test-deps.sh)")
	cli, err := filepath.EvalSymlinks(bin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := listen(node, filepath.Dir(cli), testenv.FreePort(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Kill()
	if died := s.Died(); died != "" {
		t.Fatalf("running server reported dead: %s", died)
	}
	_ = syscall.Kill(s.cmd.Process.Pid, syscall.SIGKILL) // as the OOM killer would
	<-s.exited
	if died := s.Died(); !strings.Contains(died, "exited during the test (signal: killed)") {
		t.Fatalf("Died() = %q", died)
	}
	s.Kill()
	if died := s.Died(); died == "" {
		t.Fatal("a Kill after the death hid it")
	}

	k, err := listen(node, filepath.Dir(cli), testenv.FreePort(t))
	if err != nil {
		t.Fatal(err)
	}
	k.Kill()
	if died := k.Died(); died != "" {
		t.Fatalf("a server stopped by Kill reported dead: %s", died)
	}
}
