package complete

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

const (
	envLine  = "COMP_LINE"
	envPoint = "COMP_POINT"
	envDebug = "COMP_DEBUG"
)

// Complete structs define completion for a command.
//
// edgepoll's copy: without the embedded cmd.CLI (the -install/-uninstall
// flags and the shell-profile editing of cmd/install), whose text/template
// use disables the linker's dead-method elimination. See ../README.md.
type Complete struct {
	Command Command
	Out     io.Writer
}

// New creates a new complete command.
// name is the name of command we want to auto complete.
// IMPORTANT: it must be the same name - if the auto complete
// completes the 'go' command, name must be equal to "go".
// command is the struct of the command completion.
func New(name string, command Command) *Complete {
	return &Complete{
		Command: command,
		Out:     os.Stdout,
	}
}

// Complete a command from completion line in environment variable,
// and print out the complete options.
// returns true if the completion ran (COMP_LINE set), false otherwise.
func (c *Complete) Complete() bool {
	line, point, ok := getEnv()
	if !ok {
		return false
	}

	if point >= 0 && point < len(line) {
		line = line[:point]
	}

	Log("Completing phrase: %s", line)
	a := newArgs(line)
	Log("Completing last field: %s", a.Last)
	options := c.Command.Predict(a)
	Log("Options: %s", options)

	// filter only options that match the last argument
	matches := []string{}
	for _, option := range options {
		if strings.HasPrefix(option, a.Last) {
			matches = append(matches, option)
		}
	}
	Log("Matches: %s", matches)
	c.output(matches)
	return true
}

func getEnv() (line string, point int, ok bool) {
	line = os.Getenv(envLine)
	if line == "" {
		return
	}
	point, err := strconv.Atoi(os.Getenv(envPoint))
	if err != nil {
		// If failed parsing point for some reason, set it to point
		// on the end of the line.
		Log("Failed parsing point %s: %v", os.Getenv(envPoint), err)
		point = len(line)
	}
	return line, point, true
}

func (c *Complete) output(options []string) {
	// stdout of program defines the complete options
	for _, option := range options {
		fmt.Fprintln(c.Out, option)
	}
}
