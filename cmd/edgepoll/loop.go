package main

import (
	"context"
)

// loop runs cycles as a daemon until ctx is cancelled (issue: --loop).
func (a *app) loop(ctx context.Context) int {
	a.log.Error("--loop is not implemented yet")
	return exitFailed
}
