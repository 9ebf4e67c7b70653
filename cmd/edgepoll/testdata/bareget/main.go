// Command bareget is the baseline of edgepoll's start-up benchmark: a bare
// Go program doing what an empty one-shot cycle does on the network, one
// GET of the events endpoint with the key, then exit. Built by the
// benchmark (testdata: not part of ./...).
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	req, err := http.NewRequest(http.MethodGet, os.Getenv("ILERT_API_HOST")+"/api/edge-connections/events?after-id=0&limit=100", nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	req.Header.Set("Authorization", os.Getenv("ILERT_EDGE_CONNECTOR_KEY"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, resp.Status)
		os.Exit(1)
	}
}
