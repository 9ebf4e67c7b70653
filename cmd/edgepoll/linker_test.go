package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/edgepoll/edgepoll/internal/testenv"
)

// reflectMethodUser matches the linker's -dumpdep lines of a function marked
// <ReflectMethod>: it calls reflect's Method/MethodByName with an index or
// name the compiler cannot see.
var reflectMethodUser = regexp.MustCompile(`(?m)^(\S+) <ReflectMethod> ->`)

// TestDeadMethodEliminationStaysOn links both artifacts with -dumpdep and
// fails when a reachable function outside package reflect looks methods up
// by a non-constant name: the linker would then keep every exported method
// of every type converted to an interface (~4.5 MB; third_party/README.md).
func TestDeadMethodEliminationStaysOn(t *testing.T) {
	for _, tags := range []string{generalTags, lambdaTags} {
		t.Run(tags, func(t *testing.T) {
			cmd := exec.Command("go", "build", "-trimpath", "-tags", tags, "-ldflags", "-dumpdep",
				"-o", filepath.Join(t.TempDir(), "edgepoll"), ".")
			cmd.Dir = filepath.Join(testenv.RepoRoot(), "cmd", "edgepoll")
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("go build -tags %s -ldflags -dumpdep: %v\n%.2000s", tags, err, out)
			}
			if !strings.Contains(string(out), " -> ") {
				t.Fatalf("no -dumpdep output from the linker:\n%.2000s", out)
			}
			users := map[string]bool{}
			for _, m := range reflectMethodUser.FindAllStringSubmatch(string(out), -1) {
				if !strings.HasPrefix(m[1], "reflect.") {
					users[m[1]] = true
				}
			}
			for u := range users {
				t.Errorf("%s calls reflect Method/MethodByName with a non-constant argument: "+
					"the linker keeps every exported method (find who reaches it in -ldflags=-dumpdep)", u)
			}
		})
	}
}
