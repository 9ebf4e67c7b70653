// Package docscheck checks that README.md and docs/*.md keep their relative
// links resolvable (files, and #anchors to headings) and their prose lines
// at most 120 characters.
package docscheck

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var linkRE = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// slug is GitHub's heading anchor: lowercase, spaces to '-', punctuation
// other than '-' and '_' dropped.
func slug(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

type doc struct {
	anchors map[string]bool
	prose   []string // lines outside code blocks, with their numbers kept by index
	code    []bool
}

func load(t *testing.T, path string) doc {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	d := doc{anchors: map[string]bool{}}
	inCode := false
	for _, l := range strings.Split(string(raw), "\n") {
		fence := strings.HasPrefix(l, "```")
		if fence {
			inCode = !inCode
		}
		d.prose = append(d.prose, l)
		d.code = append(d.code, inCode || fence)
		if !inCode && !fence && strings.HasPrefix(l, "#") {
			d.anchors[slug(strings.TrimLeft(l, "#"))] = true
		}
	}
	return d
}

// checkFile returns the problems found in one markdown file.
func checkFile(t *testing.T, path string) []string {
	d := load(t, path)
	var bad []string
	for i, l := range d.prose {
		if d.code[i] {
			continue
		}
		tl := strings.TrimSpace(l)
		literal := len(tl) > 1 && tl[0] == '`' && tl[len(tl)-1] == '`' // one long code span, e.g. a JSON record
		if len([]rune(l)) > 120 && !strings.HasPrefix(tl, "|") && !literal {
			bad = append(bad, path+":"+itoa(i+1)+": line over 120 characters")
		}
		for _, m := range linkRE.FindAllStringSubmatch(l, -1) {
			if p := checkLink(t, path, d, m[1]); p != "" {
				bad = append(bad, path+":"+itoa(i+1)+": "+p)
			}
		}
	}
	return bad
}

func checkLink(t *testing.T, from string, d doc, link string) string {
	if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
		return ""
	}
	file, anchor, _ := strings.Cut(link, "#")
	target := from
	if file != "" {
		target = filepath.Join(filepath.Dir(from), file)
		if _, err := os.Stat(target); err != nil {
			return "link " + link + ": no such file " + target
		}
	}
	if anchor == "" {
		return ""
	}
	if !strings.HasSuffix(target, ".md") {
		return "link " + link + ": anchor into a non-markdown file"
	}
	td := d
	if target != from {
		td = load(t, target)
	}
	if !td.anchors[anchor] {
		return "link " + link + ": no heading with anchor #" + anchor + " in " + target
	}
	return ""
}

func itoa(n int) string { return strings.TrimSpace(strings.Repeat(" ", 0) + fmtInt(n)) }

func fmtInt(n int) string {
	if n == 0 {
		return "0"
	}
	var s []byte
	for ; n > 0; n /= 10 {
		s = append([]byte{byte('0' + n%10)}, s...)
	}
	return string(s)
}

func docFiles(t *testing.T) []string {
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil || len(files) == 0 {
		t.Fatalf("no docs/*.md found: %v", err)
	}
	return append([]string{"../../README.md"}, files...)
}

func TestDocsLinksAndLines(t *testing.T) {
	for _, f := range docFiles(t) {
		for _, p := range checkFile(t, f) {
			t.Error(p)
		}
	}
}

func TestSlug(t *testing.T) {
	for h, want := range map[string]string{
		"Many connections in one edgepoll (`--config FILE`)": "many-connections-in-one-edgepoll---config-file",
		"State backends (`--state`)":                         "state-backends---state",
		"Moving from the reference agent (ilagent)":          "moving-from-the-reference-agent-ilagent",
	} {
		if got := slug(h); got != want {
			t.Errorf("slug(%q) = %q, want %q", h, got, want)
		}
	}
}
