package runner_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The shape (README, Layout): poll/ is the core and the runner drives it;
// neither depends on a target, a store, the command line or its flags:
// those implement poll's interfaces or wire them (cmd/edgepoll), and reach
// the runner only through runner.Conn.
func TestLayering(t *testing.T) {
	forbidden := []string{
		"github.com/edgepoll/edgepoll/sinks", "github.com/edgepoll/edgepoll/state",
		"github.com/edgepoll/edgepoll/cmd", "github.com/edgepoll/edgepoll/internal/cliflags",
		"github.com/edgepoll/edgepoll/internal/fleetfile", "github.com/edgepoll/edgepoll/internal/opscmd",
		"github.com/alecthomas/kong", "github.com/twmb/franz-go", "github.com/eclipse/paho.golang",
		"github.com/aws/aws-sdk-go-v2/service/dynamodb", "modernc.org/sqlite",
	}
	for _, pkg := range []string{"github.com/edgepoll/edgepoll/poll", "github.com/edgepoll/edgepoll/internal/runner"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		require.NoError(t, err, string(out))
		deps := strings.Fields(string(out))
		require.Contains(t, deps, pkg)
		for _, dep := range deps {
			for _, f := range forbidden {
				assert.False(t, dep == f || strings.HasPrefix(dep, f+"/"), "%s depends on %s", pkg, dep)
			}
		}
	}
}
