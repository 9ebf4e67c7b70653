package cliflags

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// OtherModeFlag refuses a flag that belongs to another mode than mode, the
// value of the flag modeFlag (--mode http --kafka-brokers x): it would be
// ignored, and it usually means the mode is the mistake. owners maps a
// flag (long name) to the modes that read it; a flag it does not list
// belongs to every mode. Checked are the flags set on the command line
// (uses); with --config (n.File), the keys of the connection's own entry
// instead (the file's top level and the command line are defaults for
// connections of every mode). The error is a *UsageError.
func (n Namer) OtherModeFlag(modeFlag, mode string, owners map[string][]string, uses []Use) error {
	mismatch := func(flag string) bool {
		modes := owners[flag]
		return len(modes) > 0 && !slices.Contains(modes, mode)
	}
	refuse := func(spelled, flag string) error {
		return &UsageError{Msg: fmt.Sprintf("%s: is a setting of --%s %s, but %s is %s: remove it or fix the mode",
			spelled, modeFlag, strings.Join(owners[flag], "/"), n.Name(modeFlag), mode)}
	}
	if n.File != nil {
		for _, flag := range slices.Sorted(maps.Keys(n.File.Conn)) {
			if mismatch(flag) {
				return refuse(n.File.Prefix+flag, flag)
			}
		}
		return nil
	}
	for _, u := range uses {
		if mismatch(u.Name) {
			return refuse(u.Spellings[0], u.Name)
		}
	}
	return nil
}
