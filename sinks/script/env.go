package script

import "strings"

// credentialVar reports whether an environment variable carries AWS
// credentials, or what obtains them (a credentials endpoint and its
// authorization token, a web identity token): edgepoll's own access to
// DynamoDB, SSM or Secrets Manager, which a script must not inherit. The
// region, endpoint URLs and the profile name are settings, not
// credentials: they pass.
func credentialVar(name string) bool {
	switch strings.ToUpper(name) {
	case "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME":
		return true
	}
	return strings.HasPrefix(strings.ToUpper(name), "AWS_CONTAINER_") // _CREDENTIALS_FULL_URI, _RELATIVE_URI, _AUTHORIZATION_TOKEN[_FILE]
}

// scrubEnv drops every variable whose value is one of edgepoll's secrets
// (whatever its name: ILERT_EDGE_CONNECTOR_KEY, a --config file's
// ILERT_KEY_NOC or NOC_TOKEN, ...), the ILERT_* namespace, which carries
// the per-event metadata, and the AWS credential variables (credentialVar)
// unless named in pass (--script-env) and not holding a secret.
func scrubEnv(env, secrets, pass []string) []string {
	withhold := make(map[string]bool, len(secrets))
	for _, v := range secrets {
		if v != "" {
			withhold[v] = true
		}
	}
	passed := make(map[string]bool, len(pass))
	for _, n := range pass {
		passed[n] = true
	}
	out := env[:0:0]
	for _, kv := range env {
		name, val, _ := strings.Cut(kv, "=")
		if withhold[val] || withhold[strings.TrimSpace(val)] || strings.HasPrefix(strings.ToUpper(name), "ILERT_") ||
			name == MarkerEnv || credentialVar(name) && !passed[name] {
			continue
		}
		out = append(out, kv)
	}
	return out
}
