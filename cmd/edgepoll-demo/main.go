// Command edgepoll-demo shows edgepoll end to end on one machine: it starts
// an embedded fake ilert API seeded with realistic alert events and a local
// HTTP receiver that prints what it gets, then runs the real edgepoll binary
// (one poll cycle each) to show in-order delivery, the persisted cursor
// (nothing redelivered), and a delivery failure retried with nothing lost
// (the receiver down for a moment). The state is kept, and the last lines
// say how to look at it. `make demo` runs it.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/edgepoll/edgepoll/internal/demo"
)

func main() {
	bin := flag.String("bin", "bin/edgepoll", "edgepoll binary to run")
	events := flag.Int("events", 12, "alert events to seed")
	flag.Parse()
	if err := demo.Run(os.Stdout, *bin, *events, ""); err != nil {
		fmt.Fprintf(os.Stderr, "demo failed: %v\n", err)
		os.Exit(1)
	}
}
