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
	// Lambda itself must not retry a failed run either.
	eic, _ := props["EventInvokeConfig"].(map[string]any)
	if eic["MaximumRetryAttempts"] != float64(0) {
		bad("EventInvokeConfig.MaximumRetryAttempts %v, want 0 (Lambda retries would overlap the schedule)", eic["MaximumRetryAttempts"])
	}
	if age, _ := eic["MaximumEventAgeInSeconds"].(float64); age == 0 || age > 120 {
		bad("EventInvokeConfig.MaximumEventAgeInSeconds %v is not short", eic["MaximumEventAgeInSeconds"])
	}
	// Logs are kept for a bounded time, in the log group the function uses.
	lg, _ := res["LogGroup"].(map[string]any)
	if lg["Type"] != "AWS::Logs::LogGroup" || fmt.Sprint(lg["Properties"].(map[string]any)["RetentionInDays"]) != "map[Ref:LogRetentionDays]" {
		bad("no LogGroup with RetentionInDays from LogRetentionDays")
	}
	if lc, _ := props["LoggingConfig"].(map[string]any); fmt.Sprint(lc["LogGroup"]) != "map[Ref:LogGroup]" {
		bad("the function does not log to LogGroup")
	}
	// Alarms on failed runs and on runs close to the timeout.
	alarms := map[string]bool{}
	for _, r := range res {
		r := r.(map[string]any)
		if r["Type"] != "AWS::CloudWatch::Alarm" {
			continue
		}
		b, _ := json.Marshal(r["Properties"])
		for _, m := range []string{"Errors", "Duration"} {
			if strings.Contains(string(b), `"MetricName":"`+m+`"`) && strings.Contains(string(b), `"Ref":"EdgepollFunction"`) {
				alarms[m] = true
			}
		}
		if m := string(b); strings.Contains(m, "Duration") && !strings.Contains(m, "FunctionTimeout") {
			bad("the Duration alarm is not relative to FunctionTimeout")
		}
		if !strings.Contains(string(b), `"AlarmActions":{"Fn::If":["HasAlarmTopic"`) {
			bad("an alarm does not notify AlarmTopicArn")
		}
	}
	if !alarms["Errors"] || !alarms["Duration"] {
		bad("alarms on Errors and Duration missing: %v", alarms)
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
			return strings.Replace(s, "MaximumRetryAttempts: 0\n        MaximumEventAgeInSeconds", "MaximumRetryAttempts: 2\n        MaximumEventAgeInSeconds", 1)
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
		"schedule retries": func(s string) string {
			return strings.Replace(s, "MaximumRetryAttempts: 0\n              MaximumEventAgeInSeconds", "MaximumRetryAttempts: 1\n              MaximumEventAgeInSeconds", 1)
		},
		"no invoke config": func(s string) string { return strings.Replace(s, "EventInvokeConfig:", "EventInvokeConfigX:", 1) },
		"no retention": func(s string) string {
			return strings.Replace(s, "RetentionInDays: !Ref LogRetentionDays", "RetentionInDays: 30", 1)
		},
		"no alarm": func(s string) string {
			return strings.Replace(s, "MetricName: Errors", "MetricName: Throttles", 1)
		},
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

// eval resolves the intrinsic functions a deployment would, for the given
// parameter values (CloudFormation's own semantics for Ref, Fn::If,
// Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition, Fn::Sub); AWS::NoValue
// drops the key.
type evaluator struct {
	params map[string]string
	conds  map[string]any
}

var noValue = &struct{}{}

func (e *evaluator) cond(name string) bool {
	v, ok := e.conds[name]
	if !ok {
		panic("unknown condition " + name)
	}
	return e.eval(v) == true
}

func (e *evaluator) eval(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 1 {
			for k, a := range x {
				args, _ := a.([]any)
				switch k {
				case "Ref":
					if a == "AWS::NoValue" {
						return noValue
					}
					if p, ok := e.params[a.(string)]; ok {
						return p
					}
					return "<" + a.(string) + ">"
				case "Condition":
					return e.cond(a.(string))
				case "Fn::If":
					if e.cond(args[0].(string)) {
						return e.eval(args[1])
					}
					return e.eval(args[2])
				case "Fn::Equals":
					return fmt.Sprint(e.eval(args[0])) == fmt.Sprint(e.eval(args[1]))
				case "Fn::Not":
					return e.eval(args[0]) != true
				case "Fn::And", "Fn::Or":
					all, any := true, false
					for _, c := range args {
						b := e.eval(c) == true
						all, any = all && b, any || b
					}
					return map[bool]bool{true: all, false: any}[k == "Fn::And"]
				case "Fn::Join":
					list, ok := e.eval(args[1]).([]any)
					if !ok { // a CommaDelimitedList parameter, kept as its text
						return strings.ReplaceAll(fmt.Sprint(e.eval(args[1])), ",", args[0].(string))
					}
					var parts []string
					for _, p := range list {
						parts = append(parts, fmt.Sprint(p))
					}
					return strings.Join(parts, args[0].(string))
				case "Fn::Sub":
					return regexp.MustCompile(`\$\{([^}]+)\}`).ReplaceAllStringFunc(a.(string), func(m string) string {
						return fmt.Sprint(e.eval(map[string]any{"Ref": m[2 : len(m)-1]}))
					})
				}
			}
		}
		out := map[string]any{}
		for k, c := range x {
			if r := e.eval(c); r != noValue {
				out[k] = r
			}
		}
		return out
	case []any:
		var out []any
		for _, c := range x {
			if r := e.eval(c); r != noValue {
				out = append(out, r)
			}
		}
		return out
	}
	return v
}

// deploy evaluates the template for params (defaults filled in): the
// function's environment, and the descriptions of the rules that fail.
func deploy(t *testing.T, tmpl map[string]any, params map[string]string) (env map[string]any, failed []string) {
	env, failed, _ = deployWithPolicies(t, tmpl, params)
	return env, failed
}

// deployWithPolicies also returns the function's evaluated IAM policies (JSON).
func deployWithPolicies(t *testing.T, tmpl map[string]any, params map[string]string) (env map[string]any, failed []string, policies string) {
	t.Helper()
	all := map[string]string{}
	for name, p := range tmpl["Parameters"].(map[string]any) {
		if d, ok := p.(map[string]any)["Default"]; ok {
			all[name] = fmt.Sprint(d)
		}
	}
	for k, v := range params {
		require.Contains(t, all, k, "parameter %s", k)
		all[k] = v
	}
	e := &evaluator{params: all, conds: tmpl["Conditions"].(map[string]any)}
	for _, r := range tmpl["Rules"].(map[string]any) {
		r := r.(map[string]any)
		if c, ok := r["RuleCondition"]; ok && e.eval(c) != true {
			continue
		}
		for _, a := range r["Assertions"].([]any) {
			a := a.(map[string]any)
			if e.eval(a["Assert"]) != true {
				failed = append(failed, a["AssertDescription"].(string))
			}
		}
	}
	fn := e.eval(tmpl["Resources"].(map[string]any)["EdgepollFunction"]).(map[string]any)
	env = fn["Properties"].(map[string]any)["Environment"].(map[string]any)["Variables"].(map[string]any)
	b, _ := json.Marshal(fn["Properties"].(map[string]any)["Policies"])
	return env, failed, string(b)
}

// Each mode requires its own settings and no other mode's, and the function
// gets the variables of the chosen mode only.
func TestTemplateParametersAndConditions(t *testing.T) {
	src, _ := readTemplate(t)
	tmpl := loadTemplate(t, src)
	vars := edgepollEnvVars(t)
	keys := func(env map[string]any) []string {
		var out []string
		for k := range env {
			require.True(t, vars[k], "%s is not a variable edgepoll reads", k)
			out = append(out, k)
		}
		return out
	}
	common := []string{"EDGEPOLL_STATE", "EDGEPOLL_MODE", "EDGEPOLL_LOG_FORMAT", "EDGEPOLL_DEAD_LETTER"}

	env, failed := deploy(t, tmpl, map[string]string{"Mode": "http", "HttpUrl": "https://hook.internal/x"})
	assert.Empty(t, failed)
	assert.ElementsMatch(t, append([]string{"EDGEPOLL_HTTP_URL", "EDGEPOLL_HTTP_METHOD"}, common...), keys(env))
	assert.Equal(t, "dynamodb:<StateTable>", env["EDGEPOLL_DEAD_LETTER"])

	_, failed = deploy(t, tmpl, map[string]string{"Mode": "http"})
	assert.Equal(t, []string{"Mode http needs HttpUrl."}, failed)
	_, failed = deploy(t, tmpl, map[string]string{"Mode": "http", "HttpUrl": "https://x", "HttpAuthHeader": "Authorization"})
	assert.Len(t, failed, 1)
	env, failed, pol := deployWithPolicies(t, tmpl, map[string]string{"Mode": "http", "HttpUrl": "https://x", "HttpAuthHeader": "Authorization",
		"HttpAuthValueSecretArn": "arn:aws:secretsmanager:eu-west-1:1:secret:hook"})
	assert.Empty(t, failed)
	assert.Equal(t, "http-auth-value=secretsmanager:arn:aws:secretsmanager:eu-west-1:1:secret:hook", env["EDGEPOLL_SECRET_FROM"])
	assert.NotContains(t, env, "EDGEPOLL_HTTP_AUTH_VALUE", "no secret in the function's configuration")
	assert.Contains(t, pol, `"Resource":["arn:aws:secretsmanager:eu-west-1:1:secret:hook"]`, "the role may read exactly that secret")
	assert.NotContains(t, pol, "ssm:GetParameter")

	env, failed = deploy(t, tmpl, map[string]string{"Mode": "kafka", "KafkaBrokers": "b-1:9096", "Topic": "ilert",
		"KafkaSaslMechanism": "scram-sha-512", "KafkaUsername": "edgepoll", "KafkaPasswordParameterName": "/edgepoll/kafka", "DeadLetter": "none"})
	assert.Empty(t, failed, "no HttpUrl needed in kafka mode")
	assert.ElementsMatch(t, []string{"EDGEPOLL_STATE", "EDGEPOLL_MODE", "EDGEPOLL_LOG_FORMAT", "EDGEPOLL_TOPIC", "EDGEPOLL_KAFKA_BROKERS",
		"EDGEPOLL_KAFKA_TLS", "EDGEPOLL_KAFKA_SASL_MECHANISM", "EDGEPOLL_KAFKA_USERNAME", "EDGEPOLL_SECRET_FROM", "EDGEPOLL_DEAD_LETTER"}, keys(env))
	// The binary's default is the dead letter in the state table: turning
	// it off is an explicit none (cli.md).
	assert.Equal(t, "none", env["EDGEPOLL_DEAD_LETTER"])
	assert.Equal(t, "kafka-password=ssm:/edgepoll/kafka", env["EDGEPOLL_SECRET_FROM"])
	_, failed = deploy(t, tmpl, map[string]string{"Mode": "kafka", "KafkaSaslMechanism": "plain"})
	assert.Len(t, failed, 4, "brokers, topic, user, password: %v", failed)

	env, failed = deploy(t, tmpl, map[string]string{"Mode": "mqtt", "MqttHost": "broker.internal", "Topic": "ilert/events",
		"MqttUsername": "edgepoll", "MqttPasswordSecretArn": "arn:mqtt", "HeartbeatKeyParameterName": "/edgepoll/hb"})
	assert.Empty(t, failed)
	assert.ElementsMatch(t, append([]string{"EDGEPOLL_TOPIC", "EDGEPOLL_MQTT_HOST", "EDGEPOLL_MQTT_PORT", "EDGEPOLL_MQTT_QOS",
		"EDGEPOLL_MQTT_TLS", "EDGEPOLL_MQTT_USERNAME", "EDGEPOLL_SECRET_FROM"}, common...), keys(env))
	assert.Equal(t, "mqtt-password=secretsmanager:arn:mqtt,heartbeat=ssm:/edgepoll/hb", env["EDGEPOLL_SECRET_FROM"])
	_, failed = deploy(t, tmpl, map[string]string{"Mode": "mqtt"})
	assert.Len(t, failed, 2)

	env, failed, pol = deployWithPolicies(t, tmpl, map[string]string{"Mode": "stdout", "ConnectorKeyParameterName": "/edgepoll/key"})
	assert.Empty(t, failed)
	assert.ElementsMatch(t, append([]string{"EDGEPOLL_CONNECTOR_KEY_PARAMETER"}, common...), keys(env))
	assert.Contains(t, pol, `parameter/edgepoll/key"]`)
	assert.NotContains(t, pol, "secretsmanager:GetSecretValue")

	// Several connections from the packaged file: no mode, no target
	// parameter required; the file is named by EDGEPOLL_CONFIG.
	env, failed, pol = deployWithPolicies(t, tmpl, map[string]string{"Mode": "config"})
	assert.Empty(t, failed)
	assert.ElementsMatch(t, []string{"EDGEPOLL_STATE", "EDGEPOLL_CONFIG", "EDGEPOLL_LOG_FORMAT", "EDGEPOLL_DEAD_LETTER"}, keys(env))
	assert.Equal(t, "/var/task/edgepoll.yaml", env["EDGEPOLL_CONFIG"])
	assert.Contains(t, pol, `parameter/edgepoll/*`, "the connections' keys and secrets under ConfigKeyParameterPath")
}
