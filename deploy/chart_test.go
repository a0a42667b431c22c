package deploy

import (
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

const chartDir = "chart"

// everything turns every optional part of the chart on.
var everything = map[string]any{
	"config":              map[string]any{"dataDir": "/elsewhere", "apiTokensFile": "/etc/slipway/secrets/api/tokens.yaml"},
	"secretMounts":        []any{map[string]any{"secretName": "slipway-api", "mountPath": "/etc/slipway/secrets/api"}},
	"rbac":                map[string]any{"deployNamespaces": []any{"shop", "blog"}, "scriptJobsNamespace": "ci", "clusterRules": []any{map[string]any{"apiGroups": []any{""}, "resources": []any{"namespaces"}, "verbs": []any{"create", "get"}}}},
	"ingress":             map[string]any{"enabled": true, "className": "nginx", "hosts": []any{map[string]any{"host": "slipway.example.com"}}},
	"metrics":             map[string]any{"enabled": true, "serviceMonitor": map[string]any{"enabled": true}},
	"podDisruptionBudget": map[string]any{"enabled": true},
}

// TestChartLints runs helm's own linter (templates, schema, Chart.yaml) over the defaults and
// over every option turned on.
func TestChartLints(t *testing.T) {
	for name, vals := range map[string]map[string]any{"defaults": nil, "everything": everything} {
		l := lint.AllWithKubeVersion(chartDir, vals, "slipway", nil)
		for _, m := range l.Messages {
			if m.Severity >= support.WarningSev {
				t.Errorf("%s: helm lint: %s", name, m)
			}
		}
	}
}

// TestChartDefaults: one non-root, read-only replica with probes on /healthz and /readyz, its
// data on a kept PVC, and no rights anywhere that the values do not grant.
func TestChartDefaults(t *testing.T) {
	objs := render(t, nil)
	if got := kinds(objs); got != "ConfigMap,Deployment,PersistentVolumeClaim,Service,ServiceAccount" {
		t.Fatalf("kinds = %s", got)
	}
	var d appsv1.Deployment
	decode(t, objs["Deployment/slipway"], &d)
	if *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("replicas %d, strategy %s: want one writer at a time", *d.Spec.Replicas, d.Spec.Strategy.Type)
	}
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	if pod.SecurityContext == nil || !*pod.SecurityContext.RunAsNonRoot || *pod.SecurityContext.RunAsUser == 0 ||
		!*c.SecurityContext.ReadOnlyRootFilesystem || *c.SecurityContext.AllowPrivilegeEscalation ||
		len(c.SecurityContext.Capabilities.Drop) != 1 || c.SecurityContext.Capabilities.Drop[0] != "ALL" {
		t.Errorf("pod %+v container %+v: want non-root, read-only root, no privilege escalation, no capabilities", pod.SecurityContext, c.SecurityContext)
	}
	if c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.StartupProbe == nil {
		t.Errorf("probes: liveness %v readiness %v startup %v", c.LivenessProbe, c.ReadinessProbe, c.StartupProbe)
	}
	if c.Image != "slipway:0.1.0" || strings.Join(c.Args, " ") != "serve --config=/etc/slipway/slipway.yaml" {
		t.Errorf("image %s args %v", c.Image, c.Args)
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	if mounts["data"] != "/var/lib/slipway" || mounts["tmp"] != "/tmp" {
		t.Errorf("mounts = %v: the data folder and /tmp must be writable volumes", mounts)
	}
	var pvc corev1.PersistentVolumeClaim
	decode(t, objs["PersistentVolumeClaim/slipway"], &pvc)
	if pvc.Annotations["helm.sh/resource-policy"] != "keep" {
		t.Errorf("the data PVC is not kept on uninstall: %v", pvc.Annotations)
	}
	var cm corev1.ConfigMap
	decode(t, objs["ConfigMap/slipway"], &cm)
	if cm.Data["slipway.yaml"] != "dataDir: /var/lib/slipway\nlisten: :8080\n" {
		t.Errorf("slipway.yaml = %q", cm.Data["slipway.yaml"])
	}
}

// TestChartEverything: the rights are exactly the values' namespaces and rules; config keeps
// the chart's dataDir; secrets are mounted read-only; metrics, ingress, PDB appear.
func TestChartEverything(t *testing.T) {
	objs := render(t, everything)
	want := "ClusterRole,ClusterRoleBinding,ConfigMap,Deployment,Ingress,PersistentVolumeClaim,PodDisruptionBudget," +
		"Role,Role,Role,RoleBinding,RoleBinding,RoleBinding,Service,ServiceAccount,ServiceMonitor"
	if got := kinds(objs); got != want {
		t.Fatalf("kinds = %s\nwant    %s", got, want)
	}
	var jobs rbacv1.Role
	decode(t, objs["Role/ci/slipway-script-jobs"], &jobs)
	var verbs []string
	for _, r := range jobs.Rules {
		verbs = append(verbs, strings.Join(r.Resources, "")+":"+strings.Join(r.Verbs, "/"))
	}
	if got := strings.Join(verbs, " "); got != "jobs:create/get/list/watch/delete pods:get/list/watch/delete pods/log:get pods/exec:create/get events:list" {
		t.Errorf("script Job rights = %s", got)
	}
	var bind rbacv1.RoleBinding
	decode(t, objs["RoleBinding/shop/slipway-deploy"], &bind)
	if bind.Subjects[0].Name != "slipway" || bind.Subjects[0].Namespace != "slipway" {
		t.Errorf("deploy binding subjects = %+v", bind.Subjects)
	}
	var cm corev1.ConfigMap
	decode(t, objs["ConfigMap/slipway"], &cm)
	if !strings.Contains(cm.Data["slipway.yaml"], "dataDir: /var/lib/slipway") || !strings.Contains(cm.Data["slipway.yaml"], "apiTokensFile:") {
		t.Errorf("slipway.yaml = %q: the chart's dataDir must win and the rest stay", cm.Data["slipway.yaml"])
	}
	var d appsv1.Deployment
	decode(t, objs["Deployment/slipway"], &d)
	c := d.Spec.Template.Spec.Containers[0]
	if strings.Join(c.Args, " ") != "serve --config=/etc/slipway/slipway.yaml --metrics-address=:9090" {
		t.Errorf("args = %v", c.Args)
	}
	found := false
	for _, m := range c.VolumeMounts {
		if m.MountPath == "/etc/slipway/secrets/api" {
			found = m.ReadOnly
		}
	}
	if !found {
		t.Errorf("the secret is not mounted read-only: %+v", c.VolumeMounts)
	}
}

// haValues are three coordinated replicas, with config overridden by over (a nil value
// removes the key) and the data PVC on when persistence is set.
func haValues(over map[string]any, persistence bool) map[string]any {
	cfg := map[string]any{
		"store":            "postgres://slipway@db.example/slipway",
		"storeKeyFiles":    []any{"/etc/slipway/secrets/store/key"},
		"uiSessionKeyFile": "/etc/slipway/secrets/store/ui-session-key",
		"ha":               map[string]any{"cluster": "here", "namespace": "slipway-leases"},
	}
	for k, v := range over {
		if v == nil {
			delete(cfg, k)
			continue
		}
		cfg[k] = v
	}
	return map[string]any{"replicas": 3, "config": cfg, "persistence": map[string]any{"enabled": persistence}}
}

// TestChartHA: with config.ha the replicas roll over one at a time, spread over nodes, know
// their own name (the Lease identity), keep caches per pod, and may touch Leases only in the
// namespace config.ha names.
func TestChartHA(t *testing.T) {
	objs := render(t, haValues(nil, false))
	if got := kinds(objs); got != "ConfigMap,Deployment,Role,RoleBinding,Service,ServiceAccount" {
		t.Fatalf("kinds = %s", got)
	}
	var d appsv1.Deployment
	decode(t, objs["Deployment/slipway"], &d)
	if *d.Spec.Replicas != 3 || d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType ||
		d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Errorf("replicas %d, strategy %+v: want 3 rolling with none unavailable", *d.Spec.Replicas, d.Spec.Strategy)
	}
	pod := d.Spec.Template.Spec
	aff := pod.Affinity
	if aff == nil || aff.PodAntiAffinity == nil || len(aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 ||
		aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.TopologyKey != "kubernetes.io/hostname" {
		t.Errorf("affinity = %+v: want replicas spread over nodes", aff)
	}
	env := pod.Containers[0].Env
	if len(env) != 1 || env[0].Name != "POD_NAME" || env[0].ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("env = %+v: want POD_NAME from the pod's name", env)
	}
	for _, v := range pod.Volumes {
		if v.Name == "data" && v.EmptyDir == nil {
			t.Errorf("data volume %+v: want an emptyDir per pod", v)
		}
	}
	var role rbacv1.Role
	decode(t, objs["Role/slipway-leases/slipway-leases"], &role)
	if len(role.Rules) != 1 || strings.Join(role.Rules[0].APIGroups, "") != "coordination.k8s.io" ||
		strings.Join(role.Rules[0].Resources, "") != "leases" {
		t.Errorf("lease rights = %+v", role.Rules)
	}
	var bind rbacv1.RoleBinding
	decode(t, objs["RoleBinding/slipway-leases/slipway-leases"], &bind)
	if bind.RoleRef.Name != "slipway-leases" || bind.Subjects[0].Name != "slipway" || bind.Subjects[0].Namespace != "slipway" {
		t.Errorf("lease binding = %+v", bind)
	}
	// Explicit affinity wins over the default spread.
	vals := haValues(nil, false)
	vals["affinity"] = map[string]any{"nodeAffinity": map[string]any{}}
	var given appsv1.Deployment
	decode(t, render(t, vals)["Deployment/slipway"], &given)
	if a := given.Spec.Template.Spec.Affinity; a == nil || a.PodAntiAffinity != nil || a.NodeAffinity == nil {
		t.Errorf("the values' affinity was not used as given: %+v", a)
	}
}

// TestChartRefuses what it cannot do yet, or what would not work, by name.
func TestChartRefuses(t *testing.T) {
	for name, c := range map[string]struct {
		vals map[string]any
		want string
	}{
		"replicas":       {map[string]any{"replicas": 2}, "config.ha"},
		"ha on sqlite":   {haValues(map[string]any{"store": "sqlite:///var/lib/slipway/slipway.db"}, false), "postgres://"},
		"ha shared key":  {haValues(map[string]any{"storeKeyFiles": nil}, false), "storeKeyFiles"},
		"ha UI key":      {haValues(map[string]any{"uiSessionKeyFile": nil}, false), "uiSessionKeyFile"},
		"ha with a PVC":  {haValues(nil, true), "persistence.enabled=false"},
		"servicemonitor": {map[string]any{"metrics": map[string]any{"serviceMonitor": map[string]any{"enabled": true}}}, "metrics.enabled"},
		"unknown value":  {map[string]any{"replicaCount": 2}, "replicaCount"},
		"bad namespace":  {map[string]any{"rbac": map[string]any{"deployNamespaces": []any{"Shop_1"}}}, "deployNamespaces"},
	} {
		_, err := renderErr(t, c.vals)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one naming %s", name, err, c.want)
		}
	}
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func renderErr(t *testing.T, vals map[string]any) (map[string]string, error) {
	t.Helper()
	ch := loadChart(t)
	values, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{Name: "slipway", Namespace: "slipway", IsInstall: true}, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	return engine.Render(ch, values)
}

// render returns the chart's objects by "Kind/name" or "Kind/namespace/name".
func render(t *testing.T, vals map[string]any) map[string][]byte {
	t.Helper()
	files, err := renderErr(t, vals)
	if err != nil {
		t.Fatal(err)
	}
	objs := map[string][]byte{}
	for name, body := range files {
		if filepath.Ext(name) != ".yaml" {
			continue
		}
		for _, doc := range strings.Split(body, "\n---") {
			var meta struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name      string `json:"name"`
					Namespace string `json:"namespace"`
				} `json:"metadata"`
			}
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if meta.Kind == "" {
				continue
			}
			key := meta.Kind + "/" + meta.Metadata.Name
			if meta.Metadata.Namespace != "" {
				key = meta.Kind + "/" + meta.Metadata.Namespace + "/" + meta.Metadata.Name
			}
			objs[key] = []byte(doc)
		}
	}
	return objs
}

func kinds(objs map[string][]byte) string {
	var ks []string
	for k := range objs {
		ks = append(ks, strings.SplitN(k, "/", 2)[0])
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

func decode(t *testing.T, doc []byte, into any) {
	t.Helper()
	if doc == nil {
		t.Fatal("object not rendered")
	}
	if err := yaml.Unmarshal(doc, into); err != nil {
		t.Fatal(err)
	}
}

// TestChartPassesEveryValueThrough: each value the chart takes reaches the object it is for.
func TestChartPassesEveryValueThrough(t *testing.T) {
	objs := render(t, map[string]any{
		"image":            map[string]any{"repository": "reg.example/slipway", "tag": "1.2.3", "pullPolicy": "Always"},
		"imagePullSecrets": []any{map[string]any{"name": "pull"}},
		"persistence":      map[string]any{"storageClass": "fast", "size": "20Gi", "accessModes": []any{"ReadWriteOncePod"}},
		"serviceAccount":   map[string]any{"name": "deployer", "annotations": map[string]any{"iam": "role"}},
		"service":          map[string]any{"type": "NodePort", "port": 8081},
		"ingress": map[string]any{"enabled": true, "annotations": map[string]any{"proxy": "on"}, "hosts": []any{map[string]any{"host": "s.example"}},
			"tls": []any{map[string]any{"secretName": "tls", "hosts": []any{"s.example"}}}},
		"metrics":             map[string]any{"enabled": true, "port": 9100, "serviceMonitor": map[string]any{"enabled": true, "interval": "15s", "labels": map[string]any{"release": "prom"}}},
		"podDisruptionBudget": map[string]any{"enabled": true, "maxUnavailable": 0},
		"resources":           map[string]any{"limits": map[string]any{"memory": "2Gi"}},
		"podAnnotations":      map[string]any{"note": "a"},
		"podLabels":           map[string]any{"team": "platform"},
		"nodeSelector":        map[string]any{"pool": "infra"},
		"tolerations":         []any{map[string]any{"key": "infra", "operator": "Exists"}},
		"affinity":            map[string]any{"nodeAffinity": map[string]any{}},
	})
	want := map[string][]string{
		"Deployment/slipway": {`image: "reg.example/slipway:1.2.3"`, "imagePullPolicy: Always", "name: pull", "serviceAccountName: deployer",
			"--metrics-address=:9100", "containerPort: 9100", "memory: 2Gi", "note: a", "team: platform", "pool: infra", "key: infra", "nodeAffinity:"},
		"PersistentVolumeClaim/slipway": {"storageClassName: fast", "storage: 20Gi", "ReadWriteOncePod"},
		"ServiceAccount/deployer":       {"iam: role"},
		"Service/slipway":               {"type: NodePort", "port: 8081", "port: 9100"},
		"Ingress/slipway":               {`proxy: "on"`, `host: "s.example"`, "secretName: tls"},
		"ServiceMonitor/slipway":        {"interval: 15s", "release: prom"},
		"PodDisruptionBudget/slipway":   {"maxUnavailable: 0"},
	}
	for key, parts := range want {
		doc := string(objs[key])
		if doc == "" {
			t.Errorf("%s not rendered", key)
			continue
		}
		for _, p := range parts {
			if !strings.Contains(doc, p) {
				t.Errorf("%s lacks %q:\n%s", key, p, doc)
			}
		}
	}
	// Without creating one, the chart uses the service account it is given.
	objs = render(t, map[string]any{"serviceAccount": map[string]any{"create": false, "name": "existing"}})
	if _, ok := objs["ServiceAccount/existing"]; ok || !strings.Contains(string(objs["Deployment/slipway"]), "serviceAccountName: existing") {
		t.Errorf("serviceAccount.create false: %v", kinds(objs))
	}
	// An existing claim is used and no PVC made.
	objs = render(t, map[string]any{"persistence": map[string]any{"existingClaim": "data"}})
	if _, ok := objs["PersistentVolumeClaim/slipway"]; ok || !strings.Contains(string(objs["Deployment/slipway"]), "claimName: data") {
		t.Errorf("persistence.existingClaim: %v", kinds(objs))
	}
}
