package main

import (
	"strings"

	"github.com/edgepoll/edgepoll/poll"
)

// keyShare is what a --config connection that shares its connector key with
// others (fan-out) knows of the sharing: its own name and the others'.
type keyShare struct {
	name  string
	peers []string
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
			"or give each its own edge connection)", fc.Label(), keyKeyEnv, strings.Join(labels, ", "))
	}
	conns := append(append([]*fleetConn(nil), out...), fc)
	for _, j := range all {
		share := &keyShare{name: conns[j].Name}
		for _, k := range all {
			if k != j {
				share.peers = append(share.peers, conns[k].Name)
			}
		}
		conns[j].CLI.share = share
	}
	return nil
}

// stateKeys are connection cli's state key for connector key and the keys
// a connection without a cursor of its own inherits from: the plain
// poll.ConnectionID and nothing, or for a connection that shares its key
// its own poll.CursorID and the key's plain id and the other sharers' ids.
func stateKeys(cli *CLI, key string) (conn string, inherit []string) {
	if cli.share == nil {
		return poll.ConnectionID(key), nil
	}
	inherit = []string{poll.ConnectionID(key)}
	for _, p := range cli.share.peers {
		inherit = append(inherit, poll.CursorID(key, p))
	}
	return poll.CursorID(key, cli.share.name), inherit
}
