package infra

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// exportedMetrics are the metric names edgepoll registers (metrics/) and
// the label names they can carry (their own; connection, which --config
// adds to every metric; and the target labels Prometheus's scrape adds).
func exportedMetrics(t *testing.T) (names, labels map[string]bool) {
	t.Helper()
	src, err := os.ReadFile("../metrics/metrics.go")
	require.NoError(t, err)
	names, labels = map[string]bool{}, map[string]bool{"connection": true, "le": true, "version": true,
		"job": true, "instance": true, "namespace": true, "pod": true}
	for _, m := range regexp.MustCompile(`Name: "(edgepoll_[a-z_]+)"`).FindAllStringSubmatch(string(src), -1) {
		names[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`\[\]string\{("[a-z_]+"(?:, "[a-z_]+")*)\}`).FindAllStringSubmatch(string(src), -1) {
		for _, l := range strings.Split(m[1], ", ") {
			labels[strings.Trim(l, `"`)] = true
		}
	}
	require.Contains(t, names, "edgepoll_ready")
	require.Contains(t, labels, "outcome")
	return names, labels
}

// promQL parses expr (with Grafana's variables given values) and returns
// the metrics it selects and the labels it matches or groups by.
func promQL(t *testing.T, expr string) (metrics, labels []string) {
	t.Helper()
	r := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$connection", ".*")
	e, err := parser.NewParser(parser.Options{}).ParseExpr(r.Replace(expr))
	require.NoError(t, err, expr)
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			for _, m := range n.LabelMatchers {
				if m.Name == "__name__" {
					metrics = append(metrics, m.Value)
				} else {
					labels = append(labels, m.Name)
				}
			}
		case *parser.AggregateExpr:
			labels = append(labels, n.Grouping...)
		}
		return nil
	})
	return metrics, labels
}

// checkQuery: every metric a query selects is one edgepoll exports (a
// histogram by its _bucket/_sum/_count series), every label one it carries.
func checkQuery(t *testing.T, where, expr string, names, labels map[string]bool) {
	t.Helper()
	ms, ls := promQL(t, expr)
	require.NotEmpty(t, ms, "%s: %s selects no metric", where, expr)
	for _, m := range ms {
		base := regexp.MustCompile(`_(bucket|sum|count)$`).ReplaceAllString(m, "")
		assert.True(t, names[m] || names[base], "%s: %s is not a metric edgepoll exports", where, m)
	}
	for _, l := range ls {
		assert.True(t, labels[l], "%s: label %s is on no edgepoll metric", where, l)
	}
}

type dashboard struct {
	Title         string `json:"title"`
	UID           string `json:"uid"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name, Type string
			Query      any `json:"query"`
			IncludeAll bool
			AllValue   string
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int    `json:"id"`
		Title      string `json:"title"`
		Type       string `json:"type"`
		Datasource struct {
			Type, UID string
		} `json:"datasource"`
		GridPos struct{ X, Y, W, H int } `json:"gridPos"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// The Grafana dashboard is valid dashboard JSON, every query parses as
// PromQL and uses only what edgepoll exports, every panel can be narrowed
// to the chosen connections, and it shows what an on-call engineer asks
// first.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana/edgepoll.json")
	require.NoError(t, err)
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	require.NoError(t, dec.Decode(&d))
	require.NotEmpty(t, d.Title)
	require.NotEmpty(t, d.UID)
	assert.GreaterOrEqual(t, d.SchemaVersion, 36, "a current dashboard schema")

	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Name == "connection" {
			assert.True(t, v.IncludeAll)
			assert.Equal(t, ".*", v.AllValue, "All also matches a single-connection run (no connection label)")
		}
	}
	assert.Equal(t, map[string]string{"datasource": "datasource", "connection": "query"}, vars)

	names, labels := exportedMetrics(t)
	ids := map[int]bool{}
	used := map[string]bool{}
	for _, p := range d.Panels {
		assert.False(t, ids[p.ID], "panel id %d twice", p.ID)
		ids[p.ID] = true
		assert.Contains(t, []string{"stat", "timeseries", "gauge", "table", "bargauge"}, p.Type, p.Title)
		assert.Equal(t, "prometheus", p.Datasource.Type, p.Title)
		assert.Equal(t, "${datasource}", p.Datasource.UID, p.Title)
		assert.True(t, p.GridPos.W > 0 && p.GridPos.H > 0 && p.GridPos.X+p.GridPos.W <= 24, "%s: gridPos %+v", p.Title, p.GridPos)
		require.NotEmpty(t, p.Targets, p.Title)
		for _, tg := range p.Targets {
			assert.NotEmpty(t, tg.RefID, p.Title)
			checkQuery(t, p.Title, tg.Expr, names, labels)
			assert.Contains(t, tg.Expr, `connection=~"$connection"`, "%s: narrowed to the chosen connections", p.Title)
			ms, _ := promQL(t, tg.Expr)
			for _, m := range ms {
				used[regexp.MustCompile(`_bucket$`).ReplaceAllString(m, "")] = true
			}
		}
	}
	for _, m := range []string{"edgepoll_items_total", "edgepoll_cursor", "edgepoll_last_delivery_timestamp_seconds",
		"edgepoll_consecutive_failures", "edgepoll_dead_letters_total", "edgepoll_ready"} {
		assert.True(t, used[m], "the dashboard shows %s", m)
	}
	keys := make([]string, 0, len(used))
	for m := range used {
		keys = append(keys, m)
	}
	slices.Sort(keys)
	t.Logf("metrics shown: %v", keys)
}
