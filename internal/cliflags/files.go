package cliflags

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Writable checks that path can be written as edgepoll writes its files:
// appended to if it exists, and a new file created in its directory (a new
// dead letter, a metrics file replaced by rename). The probe file is
// removed at once; an existing file is not changed.
func Writable(path string) error {
	if st, err := os.Stat(path); err == nil {
		if st.IsDir() {
			return fmt.Errorf("%s is a directory", path)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return fmt.Errorf("%s cannot be written: %v", path, errors.Unwrap(err))
		}
		f.Close()
	}
	dir := filepath.Dir(path)
	if !IsDir(dir) {
		return fmt.Errorf("directory %s does not exist", dir)
	}
	f, err := os.CreateTemp(dir, ".edgepoll-probe-*")
	if err != nil {
		return fmt.Errorf("%s: cannot create files in %s: %v", path, dir, errors.Unwrap(err))
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

// IsDir reports whether p is an existing directory.
func IsDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
