package testenv

import (
	"bytes"
	"os"
	"strconv"
)

// Alive reports whether process pid exists and is not a zombie. A killed
// process reparented to a PID 1 that does not reap (a container without an
// init) stays a zombie forever: kill(pid, 0) still succeeds for it, but it
// runs no code, so it counts as dead.
func Alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may contain spaces and parentheses, so the
	// state is the field after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	switch b[i+2] {
	case 'Z', 'X', 'x':
		return false
	}
	return true
}
