package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/alecthomas/kong"

	"github.com/edgepoll/edgepoll/poll"
)

// ilagentDefault is the reference agent's own default file (its -f), read
// from the working directory when --ilagent-db is not given.
const ilagentDefault = "./ilagent.db3"

// ilagentNone turns the look-up off (--ilagent-db none).
const ilagentNone = "none"

// expandIlagentDB resolves --ilagent-db as kong's path type would (~,
// absolute), except none, which is not a path.
func expandIlagentDB(v string) string {
	if v == "" || v == ilagentNone {
		return v
	}
	return kong.ExpandPath(v)
}

// ilagentFile is the reference agent's file a run looks at: --ilagent-db,
// else ./ilagent.db3 if it exists (implicit); "" when there is none to read.
func ilagentFile(cli *CLI) (path string, implicit bool) {
	switch cli.IlagentDB {
	case ilagentNone:
		return "", false
	case "":
		if _, err := os.Lstat(ilagentDefault); errors.Is(err, os.ErrNotExist) {
			return "", false
		}
		return ilagentDefault, true
	}
	return cli.IlagentDB, false
}

// seedFromIlagent implements --ilagent-db and its default ./ilagent.db3:
// while the store has no cursor for the connection, start from the
// reference agent's (saved at once, so it is logged once and edgepoll's own
// cursor wins from then on). A missing file, table or row is logged; a file
// that exists but cannot be read fails the run, naming it, before anything
// is polled: it is never taken as "no cursor".
func seedFromIlagent(ctx context.Context, log *slog.Logger, cli *CLI, store poll.Store, key string) error {
	path, implicit := ilagentFile(cli)
	if path == "" {
		return nil
	}
	if cli.ClusterID != "" {
		if !implicit {
			log.Warn("--ilagent-db is not used with --cluster-id: in HA mode ilert keeps the cursor")
		}
		return nil
	}
	l, err := store.Acquire(ctx, poll.ConnectionID(key), "edgepoll-import-"+runID()[len("run-"):])
	if err != nil {
		return nil // held by another run, or a state error the cycle reports
	}
	defer l.Release(ctx)
	if _, has, err := l.Load(ctx); err != nil || has {
		return nil
	}
	c, err := readIlagentCursor(ctx, path, key)
	if errors.Is(err, errIlagentNothing) {
		log.Info("--ilagent-db: nothing to import; starting without a cursor", "reason", err.Error())
		return nil
	}
	if err != nil {
		if implicit {
			return fmt.Errorf("%w (the reference agent's default file, read because edgepoll has no cursor yet: "+
				"fix or move it, or --ilagent-db none to start without it)", err)
		}
		return err
	}
	if err := l.Save(ctx, poll.Position{Cursor: c}); err != nil {
		return err
	}
	if implicit {
		log.Warn("edgepoll has no cursor yet: starting from the reference agent's cursor in its default file "+
			"(--ilagent-db none to not read it); edgepoll's own cursor is used from now on", "file", path, "cursor", c)
		return nil
	}
	log.Info("starting from the reference agent's cursor (--ilagent-db); edgepoll's own cursor is used from now on", "file", path, "cursor", c)
	return nil
}
