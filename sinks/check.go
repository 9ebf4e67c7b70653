package sinks

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// SplitList splits a comma-separated flag value, dropping empty parts.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// HostPort checks host:port with a port in 1..65535.
func HostPort(s string) error {
	h, p, err := net.SplitHostPort(s)
	if err != nil || h == "" {
		return errors.New("want host:port")
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return errors.New("port must be 1..65535")
	}
	return nil
}

// ReadableFile checks that p ("" is fine: not set) is a readable regular
// file.
func ReadableFile(p string) error {
	if p == "" {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return ShortPathErr(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ShortPathErr(err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", p)
	}
	return nil
}

// ShortPathErr is "PATH: reason" for an *os.PathError ("open PATH: reason"
// says the operation, which the user did not ask for).
func ShortPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %v", pe.Path, pe.Err)
	}
	return err
}
