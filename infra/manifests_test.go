// Package infra holds edgepoll's deployment files and the tests that check
// them. It is a separate Go module so the Kubernetes API types never end up
// in the edgepoll binary.
package infra

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// decodeStrict turns one YAML document into a typed object, rejecting
// unknown fields (a typo in a manifest is a failure, not a silent default).
func decodeStrict(doc []byte, into any) error {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	return dec.Decode(into)
}

type object struct {
	file, kind string
	value      any
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// manifestFiles are the YAML files under k8s/, as paths relative to it.
func manifestFiles(t *testing.T) []string {
	var files []string
	err := filepath.WalkDir("k8s", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".yaml") {
			files = append(files, p)
		}
		return err
	})
	require.NoError(t, err)
	require.NotEmpty(t, files)
	return files
}

// loadManifests decodes every document of every file under k8s/; an
// object's file is its path relative to k8s/ ("ha-daemon/deployment.yaml").
func loadManifests(t *testing.T) []object {
	var out []object
	for _, f := range manifestFiles(t) {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, doc := range docSep.Split(string(b), -1) {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			var meta struct{ Kind string }
			require.NoError(t, yaml.Unmarshal([]byte(doc), &meta), f)
			var v any
			switch meta.Kind {
			case "CronJob":
				v = &batchv1.CronJob{}
			case "Deployment":
				v = &appsv1.Deployment{}
			case "PodDisruptionBudget":
				v = &policyv1.PodDisruptionBudget{}
			case "Service":
				v = &corev1.Service{}
			case "Secret":
				v = &corev1.Secret{}
			case "ConfigMap":
				v = &corev1.ConfigMap{}
			case "PersistentVolumeClaim":
				v = &corev1.PersistentVolumeClaim{}
			case "ServiceAccount":
				v = &corev1.ServiceAccount{}
			case "PrometheusRule":
				v = &monitoringv1.PrometheusRule{}
			case "Kustomization":
				v = &struct {
					APIVersion string   `json:"apiVersion"`
					Kind       string   `json:"kind"`
					Resources  []string `json:"resources"`
				}{}
			default:
				t.Fatalf("%s: unexpected kind %q", f, meta.Kind)
			}
			require.NoError(t, decodeStrict([]byte(doc), v), "%s (%s)", f, meta.Kind)
			rel, _ := filepath.Rel("k8s", f)
			out = append(out, object{file: rel, kind: meta.Kind, value: v})
		}
	}
	return out
}

func find[T any](objs []object, file string) T {
	for _, o := range objs {
		if v, ok := o.value.(T); ok && (file == "" || o.file == file) {
			return v
		}
	}
	var zero T
	return zero
}

func TestUnknownFieldIsRejected(t *testing.T) {
	err := decodeStrict([]byte("apiVersion: batch/v1\nkind: CronJob\nspec:\n  schedul: '* * * * *'\n"), &batchv1.CronJob{})
	require.Error(t, err, "a typo must fail the strict decode")
}

var (
	helpOnce sync.Once
	helpText string
	helpErr  error
)

// edgepollEnvVars are the variables the real binary reads, from its --help.
func edgepollEnvVars(t *testing.T) map[string]bool {
	helpOnce.Do(func() {
		cmd := exec.Command("go", "run", "./cmd/edgepoll", "--help")
		cmd.Dir = ".."
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		helpErr = cmd.Run()
		helpText = out.String()
	})
	require.NoError(t, helpErr, helpText)
	vars := map[string]bool{}
	for _, m := range regexp.MustCompile(`\$?\b((?:EDGEPOLL|ILERT)_[A-Z0-9_]+)`).FindAllStringSubmatch(helpText, -1) {
		vars[m[1]] = true
	}
	require.Contains(t, vars, "EDGEPOLL_MODE")
	return vars
}

func checkContainer(t *testing.T, name string, c corev1.Container, vars map[string]bool) {
	t.Helper()
	sc := c.SecurityContext
	require.NotNil(t, sc, name)
	assert.True(t, *sc.ReadOnlyRootFilesystem, "%s: read-only root filesystem", name)
	assert.False(t, *sc.AllowPrivilegeEscalation, name)
	assert.Contains(t, sc.Capabilities.Drop, corev1.Capability("ALL"), name)
	keyFromSecret := false
	for _, e := range c.Env {
		assert.True(t, vars[e.Name] || strings.HasPrefix(e.Name, "AWS_"), "%s: env %s is not a variable edgepoll reads", name, e.Name)
		if e.Name == "ILERT_EDGE_CONNECTOR_KEY" {
			require.NotNil(t, e.ValueFrom, "%s: the key comes from a Secret", name)
			require.NotNil(t, e.ValueFrom.SecretKeyRef, name)
			assert.Equal(t, "edgepoll", e.ValueFrom.SecretKeyRef.Name)
			keyFromSecret = true
		}
	}
	assert.True(t, keyFromSecret, "%s: connector key from a Secret", name)
	assert.NotNil(t, c.Resources.Limits.Memory(), name)
}

func checkPodSecurity(t *testing.T, name string, ps corev1.PodSpec) {
	t.Helper()
	require.NotNil(t, ps.SecurityContext, name)
	assert.True(t, *ps.SecurityContext.RunAsNonRoot, name)
	assert.Equal(t, int64(65532), *ps.SecurityContext.RunAsUser, name)
	assert.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, ps.SecurityContext.SeccompProfile.Type, name)
}

func TestCronJobs(t *testing.T) {
	objs := loadManifests(t)
	vars := edgepollEnvVars(t)
	pvc := find[*corev1.PersistentVolumeClaim](objs, "oneshot-sqlite/pvc.yaml")
	require.NotNil(t, pvc)
	for _, file := range []string{"oneshot-sqlite/cronjob.yaml", "oneshot-dynamodb/cronjob.yaml"} {
		cj := find[*batchv1.CronJob](objs, file)
		require.NotNil(t, cj, file)
		assert.Equal(t, "* * * * *", cj.Spec.Schedule, file)
		assert.Equal(t, batchv1.ForbidConcurrent, cj.Spec.ConcurrencyPolicy, file)
		js := cj.Spec.JobTemplate.Spec
		assert.Equal(t, int32(0), *js.BackoffLimit, "%s: no retries of a failed run", file)
		assert.Less(t, *js.ActiveDeadlineSeconds, int64(60), "%s: deadline below the period", file)
		ps := js.Template.Spec
		assert.Equal(t, corev1.RestartPolicyNever, ps.RestartPolicy, file)
		checkPodSecurity(t, file, ps)
		require.Len(t, ps.Containers, 1)
		c := ps.Containers[0]
		checkContainer(t, file, c, vars)
		assert.NotContains(t, c.Args, "--loop", "%s: one-shot", file)
		state := ""
		for _, e := range c.Env {
			if e.Name == "EDGEPOLL_STATE" {
				state = e.Value
			}
		}
		if file == "oneshot-sqlite/cronjob.yaml" {
			require.True(t, strings.HasPrefix(state, "sqlite:/var/lib/edgepoll/"), state)
			require.Len(t, ps.Volumes, 1)
			require.NotNil(t, ps.Volumes[0].PersistentVolumeClaim)
			assert.Equal(t, pvc.Name, ps.Volumes[0].PersistentVolumeClaim.ClaimName, "claim matches pvc.yaml")
			assert.Equal(t, "/var/lib/edgepoll", c.VolumeMounts[0].MountPath)
		} else {
			assert.True(t, strings.HasPrefix(state, "dynamodb:"), state)
		}
	}
}

func TestDeploymentPDBAndService(t *testing.T) {
	objs := loadManifests(t)
	vars := edgepollEnvVars(t)
	d := find[*appsv1.Deployment](objs, "ha-daemon/deployment.yaml")
	require.NotNil(t, d)
	assert.Equal(t, int32(2), *d.Spec.Replicas)
	ps := d.Spec.Template.Spec
	checkPodSecurity(t, "deployment", ps)
	c := ps.Containers[0]
	checkContainer(t, "deployment", c, vars)
	args := strings.Join(c.Args, " ")
	assert.Contains(t, args, "--loop")
	assert.Contains(t, args, "-p 8977")
	assert.Contains(t, args, "--cluster-id ")
	instanceFromPod := false
	for _, e := range c.Env {
		if e.Name == "EDGEPOLL_INSTANCE_ID" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name" {
			instanceFromPod = true
		}
	}
	assert.True(t, instanceFromPod, "instance id from the pod name")
	require.Len(t, c.Ports, 1)
	port := c.Ports[0]
	assert.Equal(t, int32(8977), port.ContainerPort)
	assert.Equal(t, "/health", c.LivenessProbe.HTTPGet.Path)
	assert.Equal(t, "/ready", c.ReadinessProbe.HTTPGet.Path)
	assert.Equal(t, port.Name, c.LivenessProbe.HTTPGet.Port.StrVal)
	assert.Equal(t, port.Name, c.ReadinessProbe.HTTPGet.Port.StrVal)
	assert.GreaterOrEqual(t, *ps.TerminationGracePeriodSeconds, int64(26), "longer than edgepoll's 25s stop grace")

	pdb := find[*policyv1.PodDisruptionBudget](objs, "ha-daemon/pdb.yaml")
	require.NotNil(t, pdb)
	assert.Equal(t, 1, pdb.Spec.MinAvailable.IntValue())
	assert.Equal(t, d.Spec.Selector.MatchLabels, pdb.Spec.Selector.MatchLabels, "PDB selects the deployment's pods")
	for k, v := range d.Spec.Selector.MatchLabels {
		assert.Equal(t, v, d.Spec.Template.Labels[k])
	}
	svc := find[*corev1.Service](objs, "ha-daemon/service.yaml")
	require.NotNil(t, svc)
	assert.Equal(t, d.Spec.Selector.MatchLabels, svc.Spec.Selector)
	assert.True(t, svc.Spec.PublishNotReadyAddresses, "a replica that is not ready is the one whose metrics matter")

	// The replicas are spread over zones and kept off one node.
	require.NotEmpty(t, ps.TopologySpreadConstraints)
	tsc := ps.TopologySpreadConstraints[0]
	assert.Equal(t, "topology.kubernetes.io/zone", tsc.TopologyKey)
	assert.Equal(t, d.Spec.Selector.MatchLabels, tsc.LabelSelector.MatchLabels)
	require.NotNil(t, ps.Affinity)
	require.NotNil(t, ps.Affinity.PodAntiAffinity)
	anti := ps.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution
	require.NotEmpty(t, anti)
	assert.Equal(t, "kubernetes.io/hostname", anti[0].PodAffinityTerm.TopologyKey)
	assert.Equal(t, d.Spec.Selector.MatchLabels, anti[0].PodAffinityTerm.LabelSelector.MatchLabels)
	assert.Equal(t, port.Name, svc.Spec.Ports[0].TargetPort.StrVal)
}

func TestSecretIsAPlaceholder(t *testing.T) {
	s := find[*corev1.Secret](loadManifests(t), "secret.example.yaml")
	require.NotNil(t, s)
	assert.Contains(t, s.StringData["ILERT_EDGE_CONNECTOR_KEY"], "REPLACE")
}

// kustomizations are the ways of running edgepoll on Kubernetes, one
// directory each, and what each must deploy.
var kustomizations = map[string][]string{
	"oneshot-sqlite":   {"CronJob", "PersistentVolumeClaim"},
	"oneshot-dynamodb": {"CronJob", "ServiceAccount"},
	"ha-daemon":        {"Deployment", "PodDisruptionBudget", "Service"},
	"fleet-dynamodb":   {"ConfigMap", "ServiceAccount", "Deployment", "PodDisruptionBudget", "Service"},
}

// Every kustomization renders with kustomize itself (as kubectl apply -k
// does), deploys exactly one kind of deliverer, and no kustomization.yaml
// anywhere else could deploy two (k8s/ itself has none).
func TestKustomizationsDeployOneWayOfRunning(t *testing.T) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	fsys := filesys.MakeFsOnDisk()
	found := map[string]bool{}
	for _, f := range manifestFiles(t) {
		if filepath.Base(f) == "kustomization.yaml" {
			dir, _ := filepath.Rel("k8s", filepath.Dir(f))
			found[dir] = true
		}
	}
	want := map[string]bool{}
	for dir := range kustomizations {
		want[dir] = true
	}
	assert.Equal(t, want, found, "one kustomization per way of running, none in k8s/ itself")
	for dir, kinds := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			rm, err := k.Run(fsys, filepath.Join("k8s", dir))
			require.NoError(t, err)
			var got []string
			deliverers := 0
			for _, r := range rm.Resources() {
				got = append(got, r.GetKind())
				switch r.GetKind() {
				case "CronJob", "Deployment", "StatefulSet", "DaemonSet", "Job", "Pod":
					deliverers++
				}
			}
			assert.ElementsMatch(t, kinds, got)
			assert.Equal(t, 1, deliverers, "exactly one deliverer: %v", got)
			assert.False(t, slices.Contains(got, "CronJob") && slices.Contains(got, "Deployment"), "a CronJob and a Deployment would both deliver: %v", got)
		})
	}
}

// The PrometheusRule decodes strictly into the Prometheus Operator's types
// (loadManifests) and covers what an operator must hear about; every
// metric it uses is one edgepoll exports.
func TestPrometheusRule(t *testing.T) {
	pr := find[*monitoringv1.PrometheusRule](loadManifests(t), "prometheusrule.yaml")
	require.NotNil(t, pr)
	assert.Equal(t, "monitoring.coreos.com/v1", pr.APIVersion)
	names, labels := exportedMetrics(t)
	alerts := map[string]string{}
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			require.NotEmpty(t, r.Alert, "alerting rules only")
			alerts[r.Alert] = r.Expr.String()
			assert.NotEmpty(t, r.Labels["severity"], r.Alert)
			assert.NotEmpty(t, r.Annotations["summary"], r.Alert)
			checkQuery(t, r.Alert, r.Expr.String(), names, labels)
		}
	}
	for alert, metric := range map[string]string{
		"EdgepollNotReady":     "edgepoll_ready",
		"EdgepollNoDelivery":   "edgepoll_last_delivery_timestamp_seconds",
		"EdgepollDeadLetters":  "edgepoll_dead_letters_total",
		"EdgepollItemsSkipped": `edgepoll_items_total{outcome="skipped"}`,
	} {
		assert.Contains(t, alerts[alert], metric, alert)
	}
}

func iniKeys(t *testing.T, path string) map[string][]string {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	keys := map[string][]string{}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "[") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		require.True(t, ok, "%s: %q", path, l)
		keys[k] = append(keys[k], v)
	}
	return keys
}

func TestSystemdUnits(t *testing.T) {
	vars := edgepollEnvVars(t)
	d := iniKeys(t, "systemd/edgepoll.service")
	assert.Contains(t, d["ExecStart"][0], "--loop")
	for k, want := range map[string]string{"DynamicUser": "yes", "StateDirectory": "edgepoll", "NoNewPrivileges": "yes",
		"ProtectSystem": "strict", "Restart": "on-failure", "KillSignal": "SIGTERM"} {
		assert.Equal(t, []string{want}, d[k], k)
	}
	o := iniKeys(t, "systemd/edgepoll-oneshot.service")
	assert.Equal(t, []string{"oneshot"}, o["Type"])
	assert.NotContains(t, o["ExecStart"][0], "--loop")
	timer := iniKeys(t, "systemd/edgepoll-oneshot.timer")
	assert.Equal(t, []string{"minutely"}, timer["OnCalendar"])
	env := iniKeys(t, "systemd/edgepoll.env.example")
	for k := range env {
		assert.True(t, vars[k], "env example: %s is not a variable edgepoll reads", k)
	}
	assert.Contains(t, fmt.Sprint(env["ILERT_EDGE_CONNECTOR_KEY"]), "REPLACE")
}
