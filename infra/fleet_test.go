package infra

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
)

// The fleet Deployment: N replicas of `edgepoll --loop --config` on one
// ConfigMap, the variables the config names from one Secret, DynamoDB as
// the shared store; and the config itself is valid for the real binary.
func TestFleetDeployment(t *testing.T) {
	objs := loadManifests(t)
	d := find[*appsv1.Deployment](objs, "fleet-dynamodb/deployment.yaml")
	require.NotNil(t, d)
	assert.GreaterOrEqual(t, *d.Spec.Replicas, int32(2), "several replicas share the connections")
	ps := d.Spec.Template.Spec
	checkPodSecurity(t, "fleet", ps)
	require.Len(t, ps.Containers, 1)
	c := ps.Containers[0]
	assert.True(t, *c.SecurityContext.ReadOnlyRootFilesystem)
	assert.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
	args := strings.Join(c.Args, " ")
	assert.Contains(t, args, "--loop")
	assert.Contains(t, args, "-p 8977")
	assert.Contains(t, args, "--config /etc/edgepoll/edgepoll.yaml")
	assert.Equal(t, "/ready", c.ReadinessProbe.HTTPGet.Path)
	assert.Equal(t, "/health", c.LivenessProbe.HTTPGet.Path)
	assert.GreaterOrEqual(t, *ps.TerminationGracePeriodSeconds, int64(26))
	for _, e := range c.Env {
		assert.False(t, strings.HasPrefix(e.Name, "ILERT_") || strings.HasPrefix(e.Name, "EDGEPOLL_"), "settings belong in the config file: %s", e.Name)
	}
	require.Len(t, c.EnvFrom, 1)
	require.NotNil(t, c.EnvFrom[0].SecretRef)

	cm := find[*corev1.ConfigMap](objs, "fleet-dynamodb/configmap.yaml")
	require.NotNil(t, cm)
	require.Len(t, ps.Volumes, 1)
	assert.Equal(t, cm.Name, ps.Volumes[0].ConfigMap.Name)
	assert.Equal(t, "/etc/edgepoll", c.VolumeMounts[0].MountPath)
	cfg := cm.Data["edgepoll.yaml"]
	require.NotEmpty(t, cfg)
	assert.Contains(t, cfg, "state: dynamodb:", "replicas share DynamoDB")

	// Every variable the config names comes from the Secret the pods get.
	secret := find[*corev1.Secret](objs, "fleet-dynamodb/secret.example.yaml")
	require.NotNil(t, secret)
	assert.Equal(t, secret.Name, c.EnvFrom[0].SecretRef.Name)
	var named []string
	for _, m := range regexp.MustCompile(`(?m)^\s*-?\s*[a-z-]+-env:\s*(\S+)`).FindAllStringSubmatch(cfg, -1) {
		named = append(named, m[1])
	}
	require.NotEmpty(t, named)
	var have []string
	for k, v := range secret.StringData {
		have = append(have, k)
		assert.Contains(t, v, "REPLACE", "placeholders only")
	}
	sort.Strings(named)
	sort.Strings(have)
	assert.Equal(t, have, named, "the Secret holds exactly the variables the config names")

	pdb := find[*policyv1.PodDisruptionBudget](objs, "fleet-dynamodb/pdb.yaml")
	require.NotNil(t, pdb)
	assert.Equal(t, d.Spec.Selector.MatchLabels, pdb.Spec.Selector.MatchLabels)
	svc := find[*corev1.Service](objs, "fleet-dynamodb/service.yaml")
	require.NotNil(t, svc)
	assert.Equal(t, d.Spec.Selector.MatchLabels, svc.Spec.Selector)
	sa := find[*corev1.ServiceAccount](objs, "fleet-dynamodb/deployment.yaml")
	require.NotNil(t, sa)
	assert.Equal(t, sa.Name, ps.ServiceAccountName)

	// The real binary accepts the config: every connection is validated
	// before --connection picks one, so an unknown name is the only error.
	dir := t.TempDir()
	path := filepath.Join(dir, "edgepoll.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o644))
	cmd := exec.Command("go", "run", "./cmd/edgepoll", "--config", path, "--connection", "zz-no-such-connection")
	cmd.Dir = ".."
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "GOFLAGS=" + os.Getenv("GOFLAGS")}
	for k, v := range secret.StringData {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	_ = cmd.Run()
	assert.Contains(t, out.String(), `--connection: "zz-no-such-connection" is not a connection`, "the config is valid: %s", out.String())
}
