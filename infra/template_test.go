package infra

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/dlclark/regexp2"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// fromYAML converts a YAML node to plain Go values, turning CloudFormation's
// short-form intrinsics (!Ref, !Sub, !GetAtt a.b, ...) into their long form.
func fromYAML(n *yaml.Node) (any, error) {
	var v any
	switch n.Kind {
	case yaml.DocumentNode:
		return fromYAML(n.Content[0])
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			val, err := fromYAML(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[n.Content[i].Value] = val
		}
		v = m
	case yaml.SequenceNode:
		s := []any{}
		for _, c := range n.Content {
			val, err := fromYAML(c)
			if err != nil {
				return nil, err
			}
			s = append(s, val)
		}
		v = s
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!int":
			i, err := strconv.ParseInt(n.Value, 10, 64)
			if err != nil {
				return nil, err
			}
			v = i
		case "!!bool":
			v = n.Value == "true"
		case "!!float":
			f, err := strconv.ParseFloat(n.Value, 64)
			if err != nil {
				return nil, err
			}
			v = f
		case "!!null":
			v = nil
		default:
			v = n.Value
		}
	case yaml.AliasNode:
		return fromYAML(n.Alias)
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		name := strings.TrimPrefix(n.Tag, "!")
		switch name {
		case "Ref", "Condition":
			return map[string]any{name: v}, nil
		case "GetAtt":
			if s, ok := v.(string); ok {
				parts := strings.SplitN(s, ".", 2)
				v = []any{parts[0], parts[1]}
			}
		}
		return map[string]any{"Fn::" + name: v}, nil
	}
	return v, nil
}

func loadTemplate(t *testing.T, src []byte) map[string]any {
	var n yaml.Node
	require.NoError(t, yaml.Unmarshal(src, &n))
	v, err := fromYAML(&n)
	require.NoError(t, err)
	// Round trip through JSON: the validator wants JSON types.
	b, err := json.Marshal(v)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.Unmarshal(b, &out))
	return out
}

type re2 struct{ *regexp2.Regexp }

func (r re2) MatchString(s string) bool { ok, _ := r.Regexp.MatchString(s); return ok }
func (r re2) String() string            { return r.Regexp.String() }

func samSchema(t *testing.T) *jsonschema.Schema {
	f, err := os.Open("testdata/sam/sam.schema.json")
	require.NoError(t, err)
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	c.UseRegexpEngine(func(s string) (jsonschema.Regexp, error) {
		r, err := regexp2.Compile(s, regexp2.ECMAScript)
		if err != nil {
			return nil, err
		}
		return re2{r}, nil
	})
	require.NoError(t, c.AddResource("sam.schema.json", doc))
	s, err := c.Compile("sam.schema.json")
	require.NoError(t, err)
	return s
}

func validate(t *testing.T, tmpl map[string]any) error {
	b, _ := json.Marshal(tmpl)
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(string(b)))
	require.NoError(t, err)
	return samSchema(t).Validate(inst)
}

// check verifies what the schema cannot.
func check(tmpl map[string]any, makefile string, envVars map[string]bool) []string {
	var problems []string
	bad := func(f string, a ...any) { problems = append(problems, fmt.Sprintf(f, a...)) }
	res, _ := tmpl["Resources"].(map[string]any)
	params, _ := tmpl["Parameters"].(map[string]any)
	conds, _ := tmpl["Conditions"].(map[string]any)
	fn, _ := res["EdgepollFunction"].(map[string]any)
	if fn == nil {
		bad("no EdgepollFunction resource")
		return problems
	}
	props, _ := fn["Properties"].(map[string]any)
	meta, _ := fn["Metadata"].(map[string]any)
	if props["Handler"] != "bootstrap" {
		bad("Handler %v, want bootstrap", props["Handler"])
	}
	if props["Runtime"] != "provided.al2023" {
		bad("Runtime %v, want provided.al2023", props["Runtime"])
	}
	if fmt.Sprint(props["Architectures"]) != "[arm64]" {
		bad("Architectures %v, want [arm64]", props["Architectures"])
	}
	if meta["BuildMethod"] != "makefile" {
		bad("BuildMethod %v, want makefile", meta["BuildMethod"])
	}
	if !regexp.MustCompile(`(?m)^build-EdgepollFunction:`).MatchString(makefile) {
		bad("Makefile has no build-EdgepollFunction target")
	}
	// The timeout stays below the schedule period.
	rate, _ := params["ScheduleRate"].(map[string]any)["Default"].(string)
	m := regexp.MustCompile(`^rate\((\d+) (minute|minutes|hour|hours)\)$`).FindStringSubmatch(rate)
	if m == nil {
		bad("ScheduleRate default %q is not rate(N minutes)", rate)
	} else {
		n, _ := strconv.Atoi(m[1])
		period := n * 60
		if strings.HasPrefix(m[2], "hour") {
			period = n * 3600
		}
		timeout, _ := params["FunctionTimeout"].(map[string]any)["Default"].(float64)
		if int(timeout) >= period {
			bad("timeout %vs is not below the schedule period %ds", timeout, period)
		}
	}
	events, _ := props["Events"].(map[string]any)
	foundSchedule := false
	for _, e := range events {
		ev := e.(map[string]any)
		if ev["Type"] != "ScheduleV2" {
			continue
		}
		foundSchedule = true
		rp, _ := ev["Properties"].(map[string]any)["RetryPolicy"].(map[string]any)
		if rp["MaximumRetryAttempts"] != float64(0) {
			bad("schedule retries a missed run: MaximumRetryAttempts %v", rp["MaximumRetryAttempts"])
		}
		if age, _ := rp["MaximumEventAgeInSeconds"].(float64); age == 0 || age > 120 {
			bad("MaximumEventAgeInSeconds %v is not short", rp["MaximumEventAgeInSeconds"])
		}
	}
	if !foundSchedule {
		bad("no ScheduleV2 event")
	}
	table, _ := res["StateTable"].(map[string]any)
	tp, _ := table["Properties"].(map[string]any)
	if table["Type"] != "AWS::DynamoDB::Table" || table["DeletionPolicy"] != "Retain" {
		bad("state table must be a DynamoDB table with DeletionPolicy Retain")
	}
	if tp["BillingMode"] != "PAY_PER_REQUEST" {
		bad("state table not on-demand")
	}
	if ttl, _ := tp["TimeToLiveSpecification"].(map[string]any); ttl["AttributeName"] != "ttl" || ttl["Enabled"] != true {
		bad("TTL must be enabled on attribute ttl (the lease items)")
	}
	if pitr, _ := tp["PointInTimeRecoverySpecification"].(map[string]any); pitr["PointInTimeRecoveryEnabled"] != true {
		bad("point-in-time recovery off")
	}
	if ks := fmt.Sprint(tp["KeySchema"]); !strings.Contains(ks, "AttributeName:pk") || !strings.Contains(ks, "KeyType:HASH") {
		bad("key schema %s: want pk HASH", ks)
	}
	// IAM: DynamoDB actions only on this table.
	policies, _ := props["Policies"].([]any)
	walk(policies, func(m map[string]any) {
		actions := fmt.Sprint(m["Action"])
		if !strings.Contains(actions, "dynamodb:") {
			return
		}
		if fmt.Sprint(m["Resource"]) != "map[Fn::GetAtt:[StateTable Arn]]" {
			bad("dynamodb actions on %v, want only the state table", m["Resource"])
		}
		if strings.Contains(actions, "*") {
			bad("wildcard dynamodb action %s", actions)
		}
	})
	walk(policies, func(m map[string]any) {
		if r, ok := m["Resource"]; ok && r == "*" {
			bad("a policy statement on Resource *: %v", m["Action"])
		}
	})
	// Every Ref / GetAtt / Condition names something that exists.
	known := map[string]bool{"AWS::NoValue": true, "AWS::Region": true, "AWS::AccountId": true, "AWS::Partition": true, "AWS::StackName": true}
	for k := range params {
		known[k] = true
	}
	for k := range res {
		known[k] = true
	}
	walk(tmpl, func(m map[string]any) {
		if r, ok := m["Ref"].(string); ok && !known[r] {
			bad("Ref to unknown %q", r)
		}
		if g, ok := m["Fn::GetAtt"].([]any); ok && !known[fmt.Sprint(g[0])] {
			bad("GetAtt on unknown %v", g[0])
		}
		if c, ok := m["Fn::If"].([]any); ok {
			if _, ok := conds[fmt.Sprint(c[0])]; !ok {
				bad("Fn::If on unknown condition %v", c[0])
			}
		}
		if s, ok := m["Fn::Sub"].(string); ok {
			for _, mm := range regexp.MustCompile(`\$\{([^}!.]+)`).FindAllStringSubmatch(s, -1) {
				if !known[mm[1]] {
					bad("Sub references unknown %q", mm[1])
				}
			}
		}
	})
	// Environment variables are ones edgepoll reads.
	envBlock, _ := props["Environment"].(map[string]any)
	vars, _ := envBlock["Variables"].(map[string]any)
	if _, ok := vars["EDGEPOLL_STATE"]; !ok {
		bad("EDGEPOLL_STATE not set")
	}
	for k := range vars {
		if !envVars[k] {
			bad("env %s is not a variable edgepoll reads", k)
		}
	}
	if lc, _ := props["LoggingConfig"].(map[string]any); lc["LogFormat"] != "JSON" {
		bad("LoggingConfig.LogFormat must be JSON")
	}
	return problems
}

func walk(v any, fn func(map[string]any)) {
	switch x := v.(type) {
	case map[string]any:
		fn(x)
		for _, c := range x {
			walk(c, fn)
		}
	case []any:
		for _, c := range x {
			walk(c, fn)
		}
	}
}

func readTemplate(t *testing.T) ([]byte, string) {
	src, err := os.ReadFile("../template.yaml")
	require.NoError(t, err)
	mk, err := os.ReadFile("../Makefile")
	require.NoError(t, err)
	return src, string(mk)
}

func TestTemplateValidAgainstSAMSchema(t *testing.T) {
	src, _ := readTemplate(t)
	require.NoError(t, validate(t, loadTemplate(t, src)))
}

func TestTemplateChecksBeyondTheSchema(t *testing.T) {
	src, mk := readTemplate(t)
	assert.Empty(t, check(loadTemplate(t, src), mk, edgepollEnvVars(t)))
}

// The checks can fail: broken variants of the template are caught.
func TestTemplateChecksCatchMistakes(t *testing.T) {
	src, mk := readTemplate(t)
	vars := edgepollEnvVars(t)
	mutations := map[string]func(string) string{
		"runtime": func(s string) string { return strings.Replace(s, "provided.al2023", "go1.x", 1) },
		"retries": func(s string) string {
			return strings.Replace(s, "MaximumRetryAttempts: 0", "MaximumRetryAttempts: 2", 1)
		},
		"timeout": func(s string) string { return strings.Replace(s, "Default: 50", "Default: 90", 1) },
		"ttl":     func(s string) string { return strings.Replace(s, "AttributeName: ttl", "AttributeName: expires", 1) },
		"wide iam": func(s string) string {
			return strings.Replace(s, "Resource: !GetAtt StateTable.Arn", `Resource: "*"`, 1)
		},
		"bad ref":  func(s string) string { return strings.Replace(s, "!Ref HttpUrl", "!Ref HttpURL", 1) },
		"env typo": func(s string) string { return strings.Replace(s, "EDGEPOLL_HTTP_URL:", "EDGEPOLL_HTTPURL:", 1) },
		"no retain": func(s string) string {
			return strings.Replace(s, "DeletionPolicy: Retain", "DeletionPolicy: Delete", 1)
		},
		"buildmeth": func(s string) string { return strings.Replace(s, "BuildMethod: makefile", "BuildMethod: go1.x", 1) },
	}
	for name, mutate := range mutations {
		mutated := mutate(string(src))
		require.NotEqual(t, string(src), mutated, name)
		assert.NotEmpty(t, check(loadTemplate(t, []byte(mutated)), mk, vars), "mutation %q not caught", name)
	}
	assert.NotEmpty(t, check(loadTemplate(t, src), strings.Replace(mk, "build-EdgepollFunction:", "build-Other:", 1), vars))
	// And the schema itself rejects an unknown property of a SAM function.
	bad := strings.Replace(string(src), "      Handler: bootstrap", "      Handler: bootstrap\n      Handlr: typo", 1)
	assert.Error(t, validate(t, loadTemplate(t, []byte(bad))))
}
