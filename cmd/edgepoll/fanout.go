package main

import (
	"strings"
	"sync"

	"github.com/edgepoll/edgepoll/internal/fleetfile"
	"github.com/edgepoll/edgepoll/poll"
)

// keyShare is what a --config connection that shares its connector key with
// others (fan-out) knows of the sharing: its own name and its group.
type keyShare struct {
	name  string
	group *shareGroup
}

// shareGroup is the connections of one file on one connector key.
type shareGroup struct {
	names []string
	mu    sync.Mutex
	fan   *poll.FanOut // built by the first connection set up
}

// keyIdentity names where connection fc's connector key comes from, so
// that two connections of one file reading the same key are found: the key
// itself (key-env) or the SSM parameter or secret it is fetched from.
func keyIdentity(fc *fleetConn) string {
	switch {
	case fc.Key != "":
		return "key\x00" + fc.Key
	case fc.CLI.ConnectorKeyParameter != "":
		return "parameter\x00" + fc.CLI.ConnectorKeyParameter
	case fc.CLI.ConnectorKeySecret != "":
		return "secret\x00" + fc.CLI.ConnectorKeySecret
	}
	return ""
}

// shareKey records fc (not yet in out) under its connector key in keys and
// marks every connection sharing that key: each keeps its own cursor. With
// HA (cluster-id) ilert keeps one cursor per edge connection, so a shared
// key is a configuration error naming the connections.
func shareKey(fc *fleetConn, out []*fleetConn, keys map[string][]int) error {
	id := keyIdentity(fc)
	if id == "" {
		return nil
	}
	others := keys[id]
	keys[id] = append(others, fc.Index)
	if len(others) == 0 {
		return nil
	}
	all := append(append([]int(nil), others...), fc.Index)
	var labels []string
	ha := fc.CLI.ClusterID != ""
	for _, j := range others {
		labels = append(labels, out[j].Label())
		ha = ha || out[j].CLI.ClusterID != ""
	}
	if ha {
		return fileError("%s: %s: the same connector key as %s: with cluster-id (HA) ilert keeps one cursor per edge "+
			"connection, so its connections cannot share a key (fan-out needs a cursor per connection: drop cluster-id, "+
			"or give each its own edge connection)", fc.Label(), fleetfile.KeyKeyEnv, strings.Join(labels, ", "))
	}
	conns := append(append([]*fleetConn(nil), out...), fc)
	g := &shareGroup{}
	for _, j := range all {
		g.names = append(g.names, conns[j].Name)
	}
	for _, j := range all {
		conns[j].CLI.share = &keyShare{name: conns[j].Name, group: g}
	}
	return nil
}

// stateKeys are connection cli's state key for connector key and, for a
// connection that shares its key, what it shares with the others in this
// process (nil otherwise): the plain poll.ConnectionID for one alone, its
// poll.CursorID when shared.
func stateKeys(cli *CLI, key string) (conn string, fan *poll.FanOut) {
	if cli.share == nil {
		return poll.ConnectionID(key), nil
	}
	conn = poll.CursorID(key, cli.share.name)
	g := cli.share.group
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fan == nil {
		g.fan = &poll.FanOut{Plain: poll.ConnectionID(key), Polls: poll.SharedPolls{Sharers: len(g.names)}}
		for _, n := range g.names {
			g.fan.Members = append(g.fan.Members, poll.CursorID(key, n))
		}
	}
	return conn, g.fan
}
