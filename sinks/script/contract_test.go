package script_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgepoll/edgepoll/sinks"
	"github.com/edgepoll/edgepoll/sinks/contract"
	"github.com/edgepoll/edgepoll/sinks/script"
)

// The target is a real script that appends its item id to a file; it
// sleeps first while a hang file exists. Break takes its execute bit away
// (it cannot be started, and Check says so). Every exit status but 0 is
// retryable: the script has no permanent failure (Refused is nil).
func TestContract(t *testing.T) {
	contract.Run(t, contract.Harness{
		New: func(t *testing.T) contract.Target {
			dir := t.TempDir()
			got, hang := filepath.Join(dir, "received"), filepath.Join(dir, "hang")
			p := filepath.Join(dir, "handler.sh")
			body := "#!/bin/sh\nif [ -e '" + hang + "' ]; then sleep 30; fi\necho \"$ILERT_EDGE_ITEM_ID\" >> '" + got + "'\n"
			if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
				t.Fatal(err)
			}
			o := script.Registration.New().(*script.Options)
			o.Path, o.Timeout = p, 20*time.Second
			s := contract.Open(t, o, sinks.Shared{}, sinks.Env{})
			chmod := func(m os.FileMode) {
				if err := os.Chmod(p, m); err != nil {
					t.Fatal(err)
				}
			}
			return contract.Target{
				Sink: s,
				Received: func() []string {
					b, _ := os.ReadFile(got)
					return strings.Fields(string(b))
				},
				Break: func() func() { chmod(0o644); return func() { chmod(0o755) } },
				Hang: func() func() {
					if err := os.WriteFile(hang, nil, 0o600); err != nil {
						t.Fatal(err)
					}
					return func() { _ = os.Remove(hang) }
				},
			}
		},
		CheckSeesBreak: true,
	})
}
