// Package cliflags holds edgepoll's command-line machinery that depends on
// kong's model but not on edgepoll's flags: a command's own help page, the
// completion of enumerated flag values, reading which flags a command line
// set and how they were spelled, naming a flag in a message the way the
// user set it (a spelling, a variable, a --config key) without its value
// (kong's parse errors rewritten so), refusing another mode's flag,
// --secret-from (reading secret flags from AWS through a given fetch),
// the seconds-or-duration flag type, and the file-writability probe.
package cliflags

import (
	"fmt"
	"io"
	"strings"

	"github.com/alecthomas/kong"
	"github.com/posener/complete"
	"github.com/willabides/kongplete"
)

// CommandHelp is a command's own help: its usage, text, subcommands,
// arguments and the flags it declares itself, then a pointer to
// `edgepoll --help` for the flags every command shares (the connector key,
// --state, --config, the target, logging), which would otherwise repeat
// some 180 lines under every command.
func CommandHelp(o kong.HelpOptions, ctx *kong.Context, sel *kong.Node) error {
	w := ctx.Stdout
	usage := "edgepoll " + sel.Path()
	if len(sel.Children) > 0 {
		usage += " <command>"
	}
	for _, p := range sel.Positional {
		usage += " " + p.Summary()
	}
	fmt.Fprintf(w, "Usage: %s [flags]\n\n", usage)
	text := sel.Detail
	if text == "" {
		text = sel.Help
	}
	if text != "" {
		fmt.Fprintf(w, "%s\n\n", wrap(text, 80, ""))
	}
	var rows [][2]string
	for _, c := range sel.Children {
		if !c.Hidden {
			rows = append(rows, [2]string{c.Path(), c.Help})
		}
	}
	section(w, "Commands:", rows)
	rows = rows[:0]
	for _, p := range sel.Positional {
		rows = append(rows, [2]string{p.Summary(), formatValue(o, p)})
	}
	section(w, "Arguments:", rows)
	rows = rows[:0]
	for _, f := range sel.Flags {
		if !f.Hidden {
			rows = append(rows, [2]string{flagName(f), formatValue(o, f.Value)})
		}
	}
	section(w, "Flags:", rows)
	fmt.Fprintln(w, "Global flags (the connector key, --state, --dead-letter, --config, --mode and the")
	fmt.Fprintln(w, "target's flags, --api-url, logging) apply too, before or after the command:")
	fmt.Fprintln(w, "see edgepoll --help.")
	return nil
}

func formatValue(o kong.HelpOptions, v *kong.Value) string {
	if o.ValueFormatter != nil {
		return o.ValueFormatter(v)
	}
	return kong.DefaultHelpValueFormatter(v)
}

func flagName(f *kong.Flag) string {
	name := "    --" + f.Name
	if f.Short != 0 {
		name = "-" + string(f.Short) + ", --" + f.Name
	}
	if !f.IsBool() {
		name += "=" + f.FormatPlaceHolder()
	}
	return name
}

// section prints rows as "  name  help", the help wrapped beside the names.
func section(w io.Writer, title string, rows [][2]string) {
	if len(rows) == 0 {
		return
	}
	width := 0
	for _, r := range rows {
		width = max(width, len(r[0]))
	}
	width = min(width, 28)
	fmt.Fprintln(w, title)
	pad := strings.Repeat(" ", width+4)
	for _, r := range rows {
		if len(r[0]) > width {
			fmt.Fprintf(w, "  %s\n%s%s\n", r[0], pad, wrap(r[1], 80-len(pad), pad))
			continue
		}
		fmt.Fprintf(w, "  %-*s  %s\n", width, r[0], wrap(r[1], 80-len(pad), pad))
	}
	fmt.Fprintln(w)
}

// wrap breaks s into lines of at most n columns, indenting all but the
// first with indent.
func wrap(s string, n int, indent string) string {
	var b strings.Builder
	for pi, para := range strings.Split(s, "\n") {
		if pi > 0 {
			b.WriteString("\n" + indent)
		}
		col := 0
		for _, word := range strings.Fields(para) {
			if col > 0 && col+1+len(word) > n {
				b.WriteString("\n" + indent)
				col = 0
			} else if col > 0 {
				b.WriteByte(' ')
				col++
			}
			b.WriteString(word)
			col += len(word)
		}
	}
	return b.String()
}

// ValuePredictors complete every flag tagged predictor:"one-of:A,B,C"
// with those values (--log-format, --output, --mqtt-qos, ...): the
// values stand beside the flag they belong to.
func ValuePredictors(k *kong.Kong) []kongplete.Option {
	var opts []kongplete.Option
	seen := map[string]bool{}
	_ = kong.Visit(k.Model, func(n kong.Visitable, next kong.Next) error {
		if f, ok := n.(*kong.Flag); ok && f.Tag != nil {
			if p := f.Tag.Get("predictor"); strings.HasPrefix(p, "one-of:") && !seen[p] {
				seen[p] = true
				opts = append(opts, kongplete.WithPredictor(p, complete.PredictSet(strings.Split(strings.TrimPrefix(p, "one-of:"), ",")...)))
			}
		}
		return next(nil)
	})
	return opts
}
