package cliflags

import (
	"bytes"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type testCLI struct {
	Mode    string `name:"mode" aliases:"edge_mode"`
	URL     string `name:"http-url"`
	Verbose int    `name:"verbose" short:"v" type:"counter"`
	DB      string `name:"ilagent-db" short:"f" aliases:"file"`
	Port    int    `name:"port" short:"p"`
	Host    string `name:"mqtt-host" short:"m"`
	MQTT    int    `name:"mqtt-port" short:"q" aliases:"mqtt_port"`
	Embed   struct {
		Format string `name:"log-format" predictor:"one-of:text,json"`
	} `embed:""`
	Show struct {
		Output string `name:"output" help:"The output format."`
		Table  string `arg:"" optional:"" help:"The table to show."`
	} `cmd:"" help:"Show it."`
}

func mustParser(t *testing.T, cli any) *kong.Kong {
	t.Helper()
	k, err := kong.New(cli, kong.Exit(func(int) {}), kong.Writers(io.Discard, io.Discard))
	require.NoError(t, err)
	return k
}

func testParser(t *testing.T) (*kong.Kong, map[string]*kong.Flag) {
	t.Helper()
	k := mustParser(t, &testCLI{})
	flags := map[string]*kong.Flag{}
	for _, f := range k.Model.Flags {
		flags[f.Name] = f
	}
	return k, flags
}

// Scan finds the spellings a command line used, skipping values (a value
// that looks like a flag is not one) and reading short clusters.
func TestScan(t *testing.T) {
	_, flags := testParser(t)
	spellings := func(args ...string) map[string][]string {
		out := map[string][]string{}
		for _, u := range Scan(args, flags) {
			out[u.Name] = u.Spellings
		}
		return out
	}
	assert.Equal(t, map[string][]string{"mode": {"--mode", "--edge_mode"}, "http-url": {"--http-url"}},
		spellings("--mode", "http", "--http-url", "--edge_mode", "--edge_mode=stdout"), "--edge_mode after --http-url is its value")
	assert.Equal(t, map[string][]string{"verbose": {"-v", "-v"}, "ilagent-db": {"-f"}, "port": {"--port"}},
		spellings("-vvf", "-p", "--port", "1"), "-vvf: f takes the next argument (-p) as its value")
	assert.Equal(t, map[string][]string{"mqtt-host": {"-m"}, "mqtt-port": {"-q", "--mqtt_port"}},
		spellings("-mhost", "-q", "1", "--mqtt_port", "2", "--", "--mode", "x"), "nothing after --")
	assert.Equal(t, map[string][]string{"mode": {"--mode"}}, spellings("show", "--output", "json", "--mode", "x"),
		"a command's own flags are passed over")

	assert.NoError(t, GivenTwice(Scan([]string{"-v", "--verbose", "--mode", "a", "--mode", "b"}, flags), flags))
	err := GivenTwice(Scan([]string{"-f", "none", "--file", "x"}, flags), flags)
	require.Error(t, err)
	assert.Equal(t, "-f and --file: the same setting (--ilagent-db) given twice under two names; give it once", err.Error())
}

func TestKongNames(t *testing.T) {
	assert.Equal(t, []string{"mode", "http-url", "verbose", "ilagent-db", "port", "mqtt-host", "mqtt-port", "log-format"},
		KongNames(reflect.TypeOf(&testCLI{})))
	assert.Nil(t, KongNames(reflect.TypeOf(0)))
}

// CommandHelp prints a command's usage, text, arguments and own flags, and
// points to the global help.
func TestCommandHelp(t *testing.T) {
	var out bytes.Buffer
	cli := &testCLI{}
	k, err := kong.New(cli, kong.Exit(func(int) {}), kong.Writers(&out, io.Discard),
		kong.Help(func(o kong.HelpOptions, ctx *kong.Context) error { return CommandHelp(o, ctx, ctx.Selected()) }))
	require.NoError(t, err)
	_, _ = k.Parse([]string{"show", "--help"})
	want := "Usage: edgepoll show [<table>] [flags]\n\nShow it.\n\n" +
		"Arguments:\n  [<table>]  The table to show.\n\n" +
		"Flags:\n      --output=STRING  The output format.\n\n"
	assert.True(t, strings.HasPrefix(out.String(), want), "got:\n%s", out.String())
	assert.Contains(t, out.String(), "see edgepoll --help.")
}

func TestWrap(t *testing.T) {
	assert.Equal(t, "aaa bbb\n  ccc\n  ddd", wrap("aaa bbb ccc\nddd", 7, "  "))
}

func TestValuePredictors(t *testing.T) {
	k, _ := testParser(t)
	assert.Len(t, ValuePredictors(k), 1, "one one-of: predictor (--log-format)")
}
