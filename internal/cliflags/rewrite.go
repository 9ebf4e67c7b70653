package cliflags

import (
	"os"
	"strings"
)

// Rewrite turns a kong parse error into edgepoll's message: the flag that
// starts it ("--mqtt-qos: ..." or "-b: ...") is named the way the user
// spelled it (alias or env var), and no value the user gave is echoed
// (kong quotes the offending value, and the value may be a secret).
//
// An unexpected argument is not shown either, unless hints has a message
// for it (a command of the reference agent edgepoll does not have). The
// message never contains the value of a secret flag (tagged secret:""),
// from the command line or its variable, nor any of secrets.
func (n Namer) Rewrite(msg string, hints map[string]string, secrets ...string) string {
	if rest, ok := strings.CutPrefix(msg, "unexpected argument "); ok {
		arg, candidates, _ := strings.Cut(rest, ",")
		if hint, ok := hints[arg]; ok {
			return hint
		}
		msg = "unexpected argument (not shown: edgepoll takes flags, and optionally first a command: " + strings.Join(n.Commands, ", ") + ")"
		if candidates != "" {
			msg += "," + candidates
		}
		return n.scrub(msg, "", secrets)
	}
	for name, f := range n.Flags {
		spellings := []string{"--" + name}
		if f.Short != 0 {
			spellings = append(spellings, "-"+string(f.Short))
		}
		for _, sp := range spellings {
			if rest, ok := strings.CutPrefix(msg, sp+":"); ok {
				flag := n.Name(name)
				return n.scrub(flag+": "+ValueProblem("--"+name, rest), flag, secrets)
			}
		}
	}
	return n.scrub(msg, "", secrets)
}

// scrub is the last guard: a message that still contains the value of a
// secret (a secret flag's, from the command line or the environment, or
// one of extra) is replaced by a plain one naming flag (if known).
func (n Namer) scrub(msg, flag string, extra []string) string {
	for _, v := range append(n.secretValues(), trimmed(extra)...) {
		if len(v) >= 4 && strings.Contains(msg, v) {
			if flag == "" {
				return "invalid command line (the message is not shown: it would contain a secret)"
			}
			return flag + ": invalid value (not shown: it is a secret)"
		}
	}
	return msg
}

// secretValues lists the values given for secret flags, on the command line
// (--flag V, --flag=V, -bV) or in their environment variables.
func (n Namer) secretValues() []string {
	var vals []string
	for _, f := range n.Flags {
		if !f.Tag.Has("secret") { // secret:"" marks a flag whose value is a secret
			continue
		}
		for _, e := range f.Envs {
			vals = append(vals, os.Getenv(e))
		}
		spellings := []string{"--" + f.Name}
		for _, a := range f.Aliases {
			spellings = append(spellings, "--"+a)
		}
		for i, a := range n.Args {
			next := ""
			if i+1 < len(n.Args) {
				next = n.Args[i+1]
			}
			for _, sp := range spellings {
				if a == sp {
					vals = append(vals, next)
				} else if v, ok := strings.CutPrefix(a, sp+"="); ok {
					vals = append(vals, v)
				}
			}
			if f.Short != 0 && len(a) > 1 && a[0] == '-' && a[1] != '-' {
				if j := strings.IndexRune(a, f.Short); j > 0 {
					if j+1 < len(a) {
						vals = append(vals, strings.TrimPrefix(a[j+1:], "="))
					} else {
						vals = append(vals, next)
					}
				}
			}
		}
	}
	return trimmed(vals)
}

// trimmed is vals without surrounding white space, the empty ones dropped.
func trimmed(vals []string) []string {
	var out []string
	for _, v := range vals {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
