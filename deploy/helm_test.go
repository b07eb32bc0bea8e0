package deploy_test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/cognito-authz/cognito-authz/pkg/config"
	"github.com/cognito-authz/cognito-authz/pkg/runtime"
)

const (
	chartDir       = "helm/cognito-authz"
	releaseName    = "authz"
	releaseNS      = "platform"
	chartConfigDir = "/etc/cognito-authz/config"
	chartTLSDir    = "/etc/cognito-authz/tls"
	chartKeysDir   = "/etc/cognito-authz/session"
)

func init() {
	// Helm's loader logs (with the standard logger) every symlink it follows; the chart's files/ are
	// symlinks to deploy/monitoring, one place for the rules and the dashboard. Nothing else here logs.
	log.SetOutput(io.Discard)
}

// chartKubeVersion is the cluster the chart is rendered and linted for: the oldest its kubeVersion admits.
var chartKubeVersion = &chartutil.KubeVersion{Version: "v1.31.0", Major: "1", Minor: "31"}

// chartRender is one rendering of the chart, every object decoded strictly into its Kubernetes or
// prometheus-operator type.
type chartRender struct {
	values         chartutil.Values // the merged values the templates saw (.Values)
	kinds          map[string]int   // objects per kind
	Deployment     *appsv1.Deployment
	ServiceAccount *corev1.ServiceAccount
	Services       map[string]*corev1.Service   // by name
	ConfigMaps     map[string]*corev1.ConfigMap // by name
	Secrets        map[string]*corev1.Secret
	HPA            *autoscalingv2.HorizontalPodAutoscaler
	PDB            *policyv1.PodDisruptionBudget
	NetworkPolicy  *networkingv1.NetworkPolicy
	ServiceMonitor *monitoringv1.ServiceMonitor
	PodMonitor     *monitoringv1.PodMonitor
	PrometheusRule *monitoringv1.PrometheusRule
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	c, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	return c
}

// renderChart merges overrides (values YAML) into the chart's values, validates them against
// values.schema.json and renders every template, as `helm template` does. Any error (schema, template
// `fail`) is returned, not fatal, so tests can expect them.
func renderChart(t *testing.T, c *chart.Chart, overrides []byte) (map[string]string, chartutil.Values, error) {
	t.Helper()
	vals, err := chartutil.ReadValues(overrides)
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = *chartKubeVersion
	opts := chartutil.ReleaseOptions{Name: releaseName, Namespace: releaseNS, Revision: 1, IsInstall: true}
	rv, err := chartutil.ToRenderValuesWithSchemaValidation(c, vals, opts, caps, false)
	if err != nil {
		return nil, nil, err
	}
	files, err := engine.Render(c, rv)
	if err != nil {
		return nil, nil, err
	}
	v, err := rv.Table("Values")
	if err != nil {
		t.Fatal(err)
	}
	return files, v, nil
}

// mustRender renders and decodes every object, failing the test on any error.
func mustRender(t *testing.T, c *chart.Chart, overrides []byte) chartRender {
	t.Helper()
	files, vals, err := renderChart(t, c, overrides)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	r := chartRender{values: vals, kinds: map[string]int{}, Services: map[string]*corev1.Service{},
		ConfigMaps: map[string]*corev1.ConfigMap{}, Secrets: map[string]*corev1.Secret{}}
	names := slices.Sorted(maps.Keys(files))
	for _, name := range names {
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		rd := k8syaml.NewYAMLReader(bufio.NewReader(strings.NewReader(files[name])))
		for {
			doc, err := rd.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if len(bytes.TrimSpace(stripComments(doc))) == 0 {
				continue
			}
			r.decode(t, name, doc)
		}
	}
	return r
}

func stripComments(doc []byte) []byte {
	var out []byte
	for line := range bytes.Lines(doc) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out = append(out, line...)
		}
	}
	return out
}

// decode dispatches one rendered document on its kind and decodes it strictly (the deploy tests' strict).
func (r *chartRender) decode(t *testing.T, file string, doc []byte) {
	t.Helper()
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	r.kinds[tm.Kind]++
	switch tm.APIVersion + " " + tm.Kind {
	case "apps/v1 Deployment":
		r.Deployment = &appsv1.Deployment{}
		strict(t, doc, r.Deployment)
	case "v1 ServiceAccount":
		r.ServiceAccount = &corev1.ServiceAccount{}
		strict(t, doc, r.ServiceAccount)
	case "v1 Service":
		s := &corev1.Service{}
		strict(t, doc, s)
		r.Services[s.Name] = s
	case "v1 ConfigMap":
		cm := &corev1.ConfigMap{}
		strict(t, doc, cm)
		r.ConfigMaps[cm.Name] = cm
	case "v1 Secret":
		s := &corev1.Secret{}
		strict(t, doc, s)
		r.Secrets[s.Name] = s
	case "autoscaling/v2 HorizontalPodAutoscaler":
		r.HPA = &autoscalingv2.HorizontalPodAutoscaler{}
		strict(t, doc, r.HPA)
	case "policy/v1 PodDisruptionBudget":
		r.PDB = &policyv1.PodDisruptionBudget{}
		strict(t, doc, r.PDB)
	case "networking.k8s.io/v1 NetworkPolicy":
		r.NetworkPolicy = &networkingv1.NetworkPolicy{}
		strict(t, doc, r.NetworkPolicy)
	case "monitoring.coreos.com/v1 ServiceMonitor":
		r.ServiceMonitor = &monitoringv1.ServiceMonitor{}
		strict(t, doc, r.ServiceMonitor)
	case "monitoring.coreos.com/v1 PodMonitor":
		r.PodMonitor = &monitoringv1.PodMonitor{}
		strict(t, doc, r.PodMonitor)
	case "monitoring.coreos.com/v1 PrometheusRule":
		r.PrometheusRule = &monitoringv1.PrometheusRule{}
		strict(t, doc, r.PrometheusRule)
	default:
		t.Fatalf("%s: unexpected %s %s (add it to chartRender.decode)", file, tm.APIVersion, tm.Kind)
	}
}

func (r chartRender) container(t *testing.T) corev1.Container {
	t.Helper()
	if r.Deployment == nil {
		t.Fatal("no Deployment rendered")
	}
	cs := r.Deployment.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("got %d containers, want 1", len(cs))
	}
	return cs[0]
}

// value reads a value at a dotted path of the merged values ("autoscaling.enabled"); nil if absent.
func (r chartRender) value(path string) any {
	v, err := r.values.PathValue(path)
	if err != nil {
		return nil
	}
	return v
}

func (r chartRender) int(t *testing.T, path string) int {
	t.Helper()
	switch v := r.value(path).(type) {
	case float64:
		return int(v)
	case int:
		return v
	case int64:
		return int(v)
	case json.Number:
		n, err := v.Int64()
		if err != nil {
			t.Fatal(err)
		}
		return int(n)
	}
	t.Fatalf("value %s = %v (%T), want a number", path, r.value(path), r.value(path))
	return 0
}

// ciValues lists the chart's ci/*-values.yaml files by their short names ("hpa-pdb").
func ciValues(t *testing.T) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no ci values files: %v", err)
	}
	out := map[string][]byte{}
	for _, p := range paths {
		out[strings.TrimSuffix(filepath.Base(p), "-values.yaml")] = readFile(t, p)
	}
	return out
}

func TestHelmChartLint(t *testing.T) {
	t.Parallel()
	for name, data := range ciValues(t) {
		t.Run(name, func(t *testing.T) {
			vals, err := chartutil.ReadValues(data)
			if err != nil {
				t.Fatal(err)
			}
			l := lint.AllWithKubeVersionAndSchemaValidation(chartDir, vals, releaseNS, chartKubeVersion, false)
			for _, m := range l.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint: %s", m)
				}
			}
		})
	}
}

// TestHelmChartCombinations renders every ci/*-values.yaml and checks what must hold in all of them, plus
// what each combination is for.
func TestHelmChartCombinations(t *testing.T) {
	t.Parallel()
	c := loadChart(t)
	tests := []struct {
		name      string
		wantKinds map[string]int
		check     func(t *testing.T, r chartRender)
	}{
		{name: "default", wantKinds: map[string]int{"Deployment": 1, "Service": 1, "ServiceAccount": 1, "ConfigMap": 1, "PodDisruptionBudget": 1},
			check: func(t *testing.T, r chartRender) {
				if got := r.Deployment.Spec.Replicas; got == nil || *got != 2 {
					t.Errorf("replicas = %v, want 2", got)
				}
				wantMinAvailable(t, r.PDB, 1)
				keys := spreadKeys(r)
				if !slices.Equal(keys, []string{"kubernetes.io/hostname", "topology.kubernetes.io/zone"}) {
					t.Errorf("topology spread keys = %v, want host and zone", keys)
				}
				if r.Services[releaseName+"-cognito-authz"].Spec.TrafficDistribution != nil {
					t.Error("trafficDistribution set by default")
				}
			}},
		{name: "hpa-pdb", wantKinds: map[string]int{"Deployment": 1, "Service": 1, "ServiceAccount": 1, "ConfigMap": 1, "PodDisruptionBudget": 1, "HorizontalPodAutoscaler": 1},
			check: func(t *testing.T, r chartRender) {
				if r.Deployment.Spec.Replicas != nil {
					t.Errorf("replicas = %d with an HPA: the Deployment would fight the autoscaler on every upgrade", *r.Deployment.Spec.Replicas)
				}
				wantMinAvailable(t, r.PDB, 2)
				b := r.HPA.Spec.Behavior
				if b == nil || b.ScaleDown == nil || ptr.Deref(b.ScaleDown.StabilizationWindowSeconds, 0) < 60 {
					t.Errorf("HPA behavior = %+v, want a scale-down stabilization window", b)
				}
				var resources []corev1.ResourceName
				for _, m := range r.HPA.Spec.Metrics {
					resources = append(resources, m.Resource.Name)
				}
				if !slices.Equal(resources, []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory}) {
					t.Errorf("HPA metrics = %v, want cpu and memory", resources)
				}
			}},
		{name: "single-replica", wantKinds: map[string]int{"Deployment": 1, "Service": 1, "ServiceAccount": 1, "ConfigMap": 1, "PodDisruptionBudget": 1},
			check: func(t *testing.T, r chartRender) {
				wantMinAvailable(t, r.PDB, 0) // a one-pod install must never block a node drain
				if keys := spreadKeys(r); len(keys) != 0 {
					t.Errorf("topology spread = %v, want none (disabled)", keys)
				}
			}},
		{name: "existing-config", wantKinds: map[string]int{"Deployment": 1, "Service": 1, "ServiceAccount": 1, "PodDisruptionBudget": 1},
			check: func(t *testing.T, r chartRender) {
				c := r.container(t)
				pod := r.Deployment.Spec.Template.Spec
				if want := chartConfigDir + "/authz.yaml"; !slices.Contains(c.Args, want) {
					t.Errorf("args = %q, want -config %s", c.Args, want)
				}
				if _, ok := r.Deployment.Spec.Template.Annotations["checksum/config"]; ok {
					t.Error("checksum/config set for a ConfigMap the chart cannot see")
				}
				wantVolume(t, pod, "config", func(v corev1.Volume) bool { return v.ConfigMap != nil && v.ConfigMap.Name == "cognito-authz-config" })
				wantVolume(t, pod, "tls", func(v corev1.Volume) bool { return v.Secret != nil && v.Secret.SecretName == "cognito-authz-tls" })
				wantVolume(t, pod, "session-keys", func(v corev1.Volume) bool {
					return v.Secret != nil && v.Secret.SecretName == "cognito-authz-session-keys"
				})
				if want := "ghcr.io/cognito-authz/cognito-authz@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"; c.Image != want {
					t.Errorf("image = %q, want %q (digest wins)", c.Image, want)
				}
				if len(pod.ImagePullSecrets) != 1 || pod.ImagePullSecrets[0].Name != "regcred" {
					t.Errorf("imagePullSecrets = %v", pod.ImagePullSecrets)
				}
			}},
		{name: "tls", wantKinds: map[string]int{"Deployment": 1, "Service": 1, "ServiceAccount": 1, "ConfigMap": 1, "PodDisruptionBudget": 1},
			check: func(t *testing.T, r chartRender) {
				r.serviceConfig(t) // valid, with the Secret's files in place
				var cfg struct {
					Server struct {
						TLS map[string]string `json:"tls"`
					} `json:"server"`
				}
				if err := yaml.Unmarshal([]byte(r.ConfigMaps[r.Deployment.Name].Data["config.yaml"]), &cfg); err != nil {
					t.Fatal(err)
				}
				want := map[string]string{"cert_file": chartTLSDir + "/tls.crt", "key_file": chartTLSDir + "/tls.key"}
				if !maps.Equal(cfg.Server.TLS, want) {
					t.Errorf("server.tls = %v, want the mounted Secret's files %v, no client CA", cfg.Server.TLS, want)
				}
				wantMount(t, r.container(t), "tls", chartTLSDir)
			}},
		{name: "browser", wantKinds: map[string]int{"Deployment": 1, "Service": 1, "ServiceAccount": 1, "ConfigMap": 1, "PodDisruptionBudget": 1},
			check: func(t *testing.T, r chartRender) {
				// What serve builds at start: the browser block's meaning, the key ring read from the mounted
				// file, and the login rule.
				cfg := r.serviceConfig(t)
				if err := runtime.Validate(cfg); err != nil {
					t.Fatalf("rendered config does not validate: %v", err)
				}
				if _, err := runtime.Build(cfg, runtime.Options{}); err != nil {
					t.Fatalf("rendered config does not build: %v", err)
				}
				if cfg.Browser == nil || !strings.HasPrefix(cfg.Browser.SessionKeysFile, "/") {
					t.Fatalf("browser = %+v, want session_keys_file filled in", cfg.Browser)
				}
				wantMount(t, r.container(t), "session-keys", chartKeysDir)
				wantVolume(t, r.Deployment.Spec.Template.Spec, "session-keys", func(v corev1.Volume) bool {
					return v.Secret != nil && v.Secret.SecretName == "cognito-authz-session-keys"
				})
			}},
		{name: "monitoring", wantKinds: map[string]int{"Deployment": 1, "Service": 1, "ServiceAccount": 1, "ConfigMap": 2, "PodDisruptionBudget": 1,
			"ServiceMonitor": 1, "PodMonitor": 1, "PrometheusRule": 1},
			check: func(t *testing.T, r chartRender) {
				if r.PodMonitor.Namespace != "monitoring" {
					t.Errorf("PodMonitor namespace = %q, want monitoring", r.PodMonitor.Namespace)
				}
				if got := r.ServiceMonitor.Labels["release"]; got != "kube-prometheus-stack" {
					t.Errorf("ServiceMonitor label release = %q", got)
				}
				dash := r.ConfigMaps[releaseName+"-cognito-authz-dashboard"]
				if dash == nil || dash.Labels["grafana_dashboard"] != "1" || dash.Namespace != "monitoring" {
					t.Fatalf("dashboard ConfigMap = %+v, want label grafana_dashboard=1 in monitoring", dash)
				}
				var got, want any
				if err := json.Unmarshal([]byte(dash.Data["cognito-authz.json"]), &got); err != nil {
					t.Fatalf("dashboard JSON: %v", err)
				}
				if err := json.Unmarshal(readFile(t, "monitoring/dashboard.json"), &want); err != nil {
					t.Fatal(err)
				}
				if !equalJSON(got, want) {
					t.Error("the chart's dashboard differs from deploy/monitoring/dashboard.json")
				}
				var alerts []string
				for _, g := range r.PrometheusRule.Spec.Groups {
					for _, rule := range g.Rules {
						if rule.Alert != "" {
							alerts = append(alerts, rule.Alert)
						}
					}
				}
				fileAlerts := append(alertNames(t), "CognitoAuthzAdminDenies") // plus the ci file's extraGroups
				sort.Strings(alerts)
				sort.Strings(fileAlerts)
				if !slices.Equal(alerts, fileAlerts) {
					t.Errorf("PrometheusRule alerts = %v, want deploy/monitoring/alerts.yaml's plus extraGroups %v", alerts, fileAlerts)
				}
			}},
		{name: "networkpolicy", wantKinds: map[string]int{"Deployment": 1, "Service": 1, "ServiceAccount": 1, "ConfigMap": 1, "PodDisruptionBudget": 1, "NetworkPolicy": 1},
			check: func(t *testing.T, r chartRender) {
				np := r.NetworkPolicy
				podLabels := labels.Set(r.Deployment.Spec.Template.Labels)
				if sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector); err != nil || !sel.Matches(podLabels) {
					t.Error("NetworkPolicy podSelector does not match the pods")
				}
				for _, port := range []int{9001, 9002, 9090} {
					if !ingressAllows(np, port) {
						t.Errorf("NetworkPolicy does not admit port %d", port)
					}
				}
				if !egressAllows(np, 53) || !egressAllows(np, 443) {
					t.Error("NetworkPolicy egress must allow DNS (53) and HTTPS (443, JWKS)")
				}
				if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
					t.Error("egress rules without policyType Egress are ignored")
				}
			}},
		{name: "headless", wantKinds: map[string]int{"Deployment": 1, "Service": 2, "ServiceAccount": 1, "ConfigMap": 1, "PodDisruptionBudget": 1, "ServiceMonitor": 1},
			check: func(t *testing.T, r chartRender) {
				h := r.Services[releaseName+"-cognito-authz-headless"]
				if h == nil || h.Spec.ClusterIP != corev1.ClusterIPNone || h.Spec.PublishNotReadyAddresses {
					t.Fatalf("headless Service = %+v, want clusterIP None and only ready addresses", h)
				}
				svc := r.Services[releaseName+"-cognito-authz"]
				if got := ptr.Deref(svc.Spec.TrafficDistribution, ""); got != corev1.ServiceTrafficDistributionPreferClose {
					t.Errorf("trafficDistribution = %q, want PreferClose", got)
				}
				for _, s := range r.Services {
					for _, p := range s.Spec.Ports {
						if p.Name == "http-authz" {
							t.Errorf("Service %s exposes http-authz with ports.http.enabled false", s.Name)
						}
					}
				}
				if env := envValue(r.container(t), "COGNITO_AUTHZ_HTTP_ADDR"); env == nil || *env != "" {
					t.Errorf("COGNITO_AUTHZ_HTTP_ADDR = %v, want set to \"\" (listener off whatever the file says)", env)
				}
				// The ServiceMonitor must not select the headless Service too: each pod would be scraped twice.
				sel, err := metav1.LabelSelectorAsSelector(&r.ServiceMonitor.Spec.Selector)
				if err != nil {
					t.Fatal(err)
				}
				var selected []string
				for _, s := range r.Services {
					if sel.Matches(labels.Set(s.Labels)) {
						selected = append(selected, s.Name)
					}
				}
				if !slices.Equal(selected, []string{svc.Name}) {
					t.Errorf("ServiceMonitor selects %v, want only %s", selected, svc.Name)
				}
			}},
		{name: "extras", wantKinds: map[string]int{"Deployment": 1, "Service": 1, "ServiceAccount": 1, "ConfigMap": 2, "PodDisruptionBudget": 1, "Secret": 1},
			check: func(t *testing.T, r chartRender) {
				c := r.container(t)
				if v := envValue(c, "OTEL_TRACES_EXPORTER"); v == nil || *v != "otlp" {
					t.Errorf("extraEnv OTEL_TRACES_EXPORTER = %v", v)
				}
				if len(c.EnvFrom) != 1 || c.EnvFrom[0].ConfigMapRef == nil || c.EnvFrom[0].ConfigMapRef.Name != "otel-env" {
					t.Errorf("envFrom = %+v", c.EnvFrom)
				}
				wantMount(t, c, "ca-bundle", "/etc/ssl/corporate")
				if _, ok := r.Secrets["authz-extra"]; !ok {
					t.Errorf("extraObjects template string not rendered with tpl: secrets %v", slices.Collect(maps.Keys(r.Secrets)))
				}
				tsc := r.Deployment.Spec.Template.Spec.TopologySpreadConstraints
				if len(tsc) != 1 || tsc[0].MaxSkew != 2 || tsc[0].LabelSelector.MatchLabels["app.kubernetes.io/instance"] != releaseName {
					t.Errorf("topologySpreadConstraints = %+v, want the given one with its template resolved", tsc)
				}
				if got := r.Deployment.Spec.Template.Annotations["sidecar.istio.io/inject"]; got != "false" {
					t.Errorf("podAnnotations not applied: %v", r.Deployment.Spec.Template.Annotations)
				}
				if _, ok := r.Deployment.Spec.Template.Annotations["checksum/config"]; !ok {
					t.Error("podAnnotations replaced the checksum annotation")
				}
				if r.PDB.Spec.MaxUnavailable == nil || r.PDB.Spec.MaxUnavailable.IntValue() != 1 || r.PDB.Spec.MinAvailable != nil {
					t.Errorf("PDB = %+v, want maxUnavailable 1 only", r.PDB.Spec)
				}
				if c.StartupProbe == nil || c.StartupProbe.HTTPGet == nil {
					t.Error("startupProbe.enabled rendered no startup probe")
				}
			}},
	}
	files := ciValues(t)
	for _, tt := range tests {
		if _, ok := files[tt.name]; !ok {
			t.Errorf("case %s has no ci/%s-values.yaml", tt.name, tt.name)
		}
		delete(files, tt.name)
	}
	for name := range files {
		t.Errorf("ci/%s-values.yaml has no case in TestHelmChartCombinations", name)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := mustRender(t, c, readFile(t, filepath.Join(chartDir, "ci", tt.name+"-values.yaml")))
			if !maps.Equal(r.kinds, tt.wantKinds) {
				t.Errorf("kinds = %v, want %v", r.kinds, tt.wantKinds)
			}
			checkInvariants(t, r)
			tt.check(t, r)
		})
	}
}

// checkInvariants is what every rendering must satisfy, whatever the values.
func checkInvariants(t *testing.T, r chartRender) {
	t.Helper()
	c := r.container(t)
	pod := r.Deployment.Spec.Template.Spec
	podLabels := labels.Set(r.Deployment.Spec.Template.Labels)
	for _, obj := range []metav1.Object{r.Deployment, r.ServiceAccount} {
		if obj != nil && obj.GetNamespace() != releaseNS {
			t.Errorf("%s namespace = %q, want the release's %q", obj.GetName(), obj.GetNamespace(), releaseNS)
		}
	}
	t.Run("security_context", func(t *testing.T) {
		sc, psc := c.SecurityContext, pod.SecurityContext
		if sc == nil || psc == nil {
			t.Fatal("no securityContext")
		}
		for _, ch := range []struct {
			name string
			ok   bool
		}{
			{"runAsNonRoot", ptr.Deref(sc.RunAsNonRoot, false)},
			{"readOnlyRootFilesystem", ptr.Deref(sc.ReadOnlyRootFilesystem, false)},
			{"allowPrivilegeEscalation false", sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation},
			{"not privileged", !ptr.Deref(sc.Privileged, false)},
			{"capabilities drop ALL, add none", sc.Capabilities != nil && slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) && len(sc.Capabilities.Add) == 0},
			{"seccomp RuntimeDefault", psc.SeccompProfile != nil && psc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault},
			{"pod runAsNonRoot", ptr.Deref(psc.RunAsNonRoot, false)},
			{"no service account token", pod.AutomountServiceAccountToken != nil && !*pod.AutomountServiceAccountToken},
		} {
			if !ch.ok {
				t.Errorf("want %s", ch.name)
			}
		}
	})
	t.Run("probes", func(t *testing.T) {
		rp, lp := c.ReadinessProbe, c.LivenessProbe
		grpcPort := int32(r.int(t, "ports.grpc"))
		if r.value("tls.existingSecret") != "" {
			// The kubelet's gRPC probe speaks no TLS: readiness moves to /readyz on the plain admin port.
			if rp == nil || rp.HTTPGet == nil || rp.HTTPGet.Path != "/readyz" || rp.HTTPGet.Port.String() != "http-admin" {
				t.Errorf("readinessProbe with TLS = %+v, want httpGet /readyz on http-admin", rp)
			}
		} else if rp == nil || rp.GRPC == nil || rp.GRPC.Port != grpcPort || ptr.Deref(rp.GRPC.Service, "") != authzService {
			t.Errorf("readinessProbe = %+v, want gRPC port %d service %s", rp, grpcPort, authzService)
		}
		if lp == nil || lp.HTTPGet == nil || lp.HTTPGet.Path != "/healthz" || lp.HTTPGet.Port.String() != "http-admin" {
			t.Errorf("livenessProbe = %+v, want httpGet /healthz on http-admin (never dependent on Cognito)", lp)
		}
		if containerPort(t, c, "grpc") != grpcPort {
			t.Errorf("container port grpc != ports.grpc %d", grpcPort)
		}
		if env := envValue(c, "COGNITO_AUTHZ_GRPC_ADDR"); env == nil || *env != fmt.Sprintf(":%d", grpcPort) {
			t.Errorf("COGNITO_AUTHZ_GRPC_ADDR = %v, want :%d (the probed port)", env, grpcPort)
		}
	})
	t.Run("service", func(t *testing.T) {
		svc := r.Services[r.Deployment.Name]
		if svc == nil {
			t.Fatalf("no Service named like the Deployment %s", r.Deployment.Name)
		}
		for _, s := range r.Services {
			if !labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels) {
				t.Errorf("Service %s selector %v does not match the pods", s.Name, s.Spec.Selector)
			}
			for _, p := range s.Spec.Ports {
				containerPort(t, c, p.TargetPort.String()) // every target names a container port
			}
		}
		if p := servicePort(t, svc, "grpc"); ptr.Deref(p.AppProtocol, "") != "grpc" {
			t.Errorf("grpc appProtocol = %v, want grpc", p.AppProtocol)
		}
		sel, err := metav1.LabelSelectorAsSelector(r.Deployment.Spec.Selector)
		if err != nil || !sel.Matches(podLabels) {
			t.Errorf("Deployment selector does not match its pods (%v)", err)
		}
	})
	t.Run("pdb_follows_replicas", func(t *testing.T) {
		if r.PDB == nil {
			return
		}
		sel, err := metav1.LabelSelectorAsSelector(r.PDB.Spec.Selector)
		if err != nil || !sel.Matches(podLabels) {
			t.Errorf("PDB selector does not match the pods")
		}
		min := r.int(t, "replicaCount")
		if r.HPA != nil {
			min = int(ptr.Deref(r.HPA.Spec.MinReplicas, 1))
		}
		if ma := r.PDB.Spec.MinAvailable; ma != nil && ma.Type == intstr.Int && ma.IntValue() >= min {
			t.Errorf("PDB minAvailable %d >= minimum replicas %d: no pod can be evicted, node drains block", ma.IntValue(), min)
		}
		if r.PDB.Spec.UnhealthyPodEvictionPolicy == nil || *r.PDB.Spec.UnhealthyPodEvictionPolicy != policyv1.AlwaysAllow {
			t.Error("unhealthyPodEvictionPolicy != AlwaysAllow: an unready pod (keys not loaded) would block drains")
		}
	})
	t.Run("hpa", func(t *testing.T) {
		if r.HPA == nil {
			return
		}
		ref := r.HPA.Spec.ScaleTargetRef
		if ref.Kind != "Deployment" || ref.Name != r.Deployment.Name || ref.APIVersion != "apps/v1" {
			t.Errorf("HPA scaleTargetRef = %+v, want the Deployment", ref)
		}
	})
	t.Run("spread", func(t *testing.T) {
		for _, tsc := range pod.TopologySpreadConstraints {
			sel, err := metav1.LabelSelectorAsSelector(tsc.LabelSelector)
			if err != nil || !sel.Matches(podLabels) {
				t.Errorf("topologySpreadConstraint %s selects other pods", tsc.TopologyKey)
			}
		}
	})
	t.Run("mounts", func(t *testing.T) {
		vols := map[string]bool{}
		for _, v := range pod.Volumes {
			vols[v.Name] = true
		}
		for _, m := range c.VolumeMounts {
			if !vols[m.Name] {
				t.Errorf("volumeMount %s has no volume", m.Name)
			}
			for _, o := range c.VolumeMounts {
				if o.Name != m.Name && strings.HasPrefix(o.MountPath, m.MountPath+"/") && m.ReadOnly {
					t.Errorf("%s is mounted inside read-only %s: the runtime cannot create its mount point", o.MountPath, m.MountPath)
				}
			}
		}
		wantMount(t, c, "config", chartConfigDir)
	})
	t.Run("config_and_grace", func(t *testing.T) {
		grace := time.Duration(ptr.Deref(pod.TerminationGracePeriodSeconds, 30)) * time.Second
		var preStop time.Duration
		if h := c.Lifecycle; h != nil && h.PreStop != nil && h.PreStop.Sleep != nil {
			preStop = time.Duration(h.PreStop.Sleep.Seconds) * time.Second
		}
		shutdown := 15 * time.Second // the service's default, for a ConfigMap the chart does not render
		if r.ConfigMaps[r.Deployment.Name] != nil {
			cfg := r.serviceConfig(t)
			shutdown = cfg.Server.ShutdownTimeout.Std()
			if _, ok := r.Deployment.Spec.Template.Annotations["checksum/config"]; !ok {
				t.Error("no checksum/config annotation: a config change would not roll the pods")
			}
		}
		if grace <= preStop+shutdown {
			t.Errorf("terminationGracePeriodSeconds %s <= preStop %s + shutdown_timeout %s: the kubelet would kill a stop in progress", grace, preStop, shutdown)
		}
	})
	t.Run("monitors", func(t *testing.T) {
		if sm := r.ServiceMonitor; sm != nil {
			for _, ep := range sm.Spec.Endpoints {
				servicePort(t, r.Services[r.Deployment.Name], ep.Port)
			}
		}
		if pm := r.PodMonitor; pm != nil {
			sel, err := metav1.LabelSelectorAsSelector(&pm.Spec.Selector)
			if err != nil || !sel.Matches(podLabels) {
				t.Error("PodMonitor selector does not match the pods")
			}
			for _, ep := range pm.Spec.PodMetricsEndpoints {
				containerPort(t, c, ptr.Deref(ep.Port, ""))
			}
		}
	})
}

// serviceConfig parses the chart's rendered config.yaml with the service's own parser.
func (r chartRender) serviceConfig(t *testing.T) *config.Config {
	t.Helper()
	cm := r.ConfigMaps[r.Deployment.Name]
	if cm == nil {
		t.Fatal("no config ConfigMap rendered")
	}
	data := cm.Data["config.yaml"]
	if strings.Contains(data, chartTLSDir+"/") {
		// The service reads the TLS files while validating: stand in for the mounted Secret with a real
		// self-signed certificate in a temporary directory, named as the Secret's keys are.
		dir := t.TempDir()
		writeTLSSecret(t, dir)
		data = strings.ReplaceAll(data, chartTLSDir+"/", dir+"/")
	}
	if strings.Contains(data, chartKeysDir+"/") {
		// The same for the session key Secret: one real key, under the Secret's key names.
		dir := t.TempDir()
		key := make([]byte, 32)
		rand.Read(key)
		for _, name := range []string{"session-keys", "ring.json"} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		data = strings.ReplaceAll(data, chartKeysDir+"/", dir+"/")
	}
	c, err := config.Parse([]byte(data))
	if err != nil {
		t.Fatalf("config.Parse(rendered config.yaml): %v\n%s", err, cm.Data["config.yaml"])
	}
	return c
}

// writeTLSSecret writes what a cert-manager kubernetes.io/tls Secret holds: tls.crt, tls.key, ca.crt.
func writeTLSSecret(t *testing.T, dir string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cognito-authz"}, DNSNames: []string{"cognito-authz"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for name, data := range map[string][]byte{
		"tls.crt": cert, "ca.crt": cert, "tls.key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func wantMinAvailable(t *testing.T, pdb *policyv1.PodDisruptionBudget, want int) {
	t.Helper()
	if pdb == nil {
		t.Fatal("no PodDisruptionBudget")
	}
	if ma := pdb.Spec.MinAvailable; ma == nil || ma.Type != intstr.Int || ma.IntValue() != want || pdb.Spec.MaxUnavailable != nil {
		t.Errorf("PDB minAvailable = %v maxUnavailable = %v, want minAvailable %d", ma, pdb.Spec.MaxUnavailable, want)
	}
}

func spreadKeys(r chartRender) []string {
	var keys []string
	for _, c := range r.Deployment.Spec.Template.Spec.TopologySpreadConstraints {
		keys = append(keys, c.TopologyKey)
	}
	sort.Strings(keys)
	return keys
}

func wantVolume(t *testing.T, pod corev1.PodSpec, name string, ok func(corev1.Volume) bool) {
	t.Helper()
	for _, v := range pod.Volumes {
		if v.Name == name {
			if !ok(v) {
				t.Errorf("volume %s = %+v", name, v)
			}
			return
		}
	}
	t.Errorf("no volume %s", name)
}

func wantMount(t *testing.T, c corev1.Container, name, path string) {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.Name == name {
			if m.MountPath != path {
				t.Errorf("volume %s mounted at %s, want %s", name, m.MountPath, path)
			}
			return
		}
	}
	t.Errorf("volume %s is not mounted", name)
}

// envValue is the literal value of an env var, nil when it is not set.
func envValue(c corev1.Container, name string) *string {
	for _, e := range c.Env {
		if e.Name == name {
			return &e.Value
		}
	}
	return nil
}

func equalJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// TestHelmConfigChecksum: a config change must roll the pods (checksum/config changes); a change that
// does not touch the config must not.
func TestHelmConfigChecksum(t *testing.T) {
	t.Parallel()
	c := loadChart(t)
	checksum := func(t *testing.T, values string) string {
		r := mustRender(t, c, []byte(values))
		sum := r.Deployment.Spec.Template.Annotations["checksum/config"]
		if len(sum) != 64 {
			t.Fatalf("checksum/config = %q, want a sha256", sum)
		}
		return sum
	}
	base := checksum(t, "{}")
	tests := []struct {
		name   string
		values string
		change bool
	}{
		{name: "log_level", values: "config: {log: {level: debug}}", change: true},
		{name: "pool_client", values: `config: {pools: [{name: main, region: us-east-1, user_pool_id: us-east-1_EXAMPLE, client_ids: [other]}]}`, change: true},
		{name: "tls_fills_in_paths", values: "tls: {existingSecret: s}", change: true},
		{name: "replicas_only", values: "replicaCount: 3", change: false},
		{name: "pod_annotation_only", values: "podAnnotations: {a: b}", change: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := checksum(t, tt.values); (got != base) != tt.change {
				t.Errorf("checksum changed = %v, want %v", got != base, tt.change)
			}
		})
	}
}

// TestHelmValuesRejected: values the chart must refuse, by the schema or by a template's fail, with a
// message that names the problem.
func TestHelmValuesRejected(t *testing.T) {
	t.Parallel()
	c := loadChart(t)
	tests := []struct {
		name    string
		values  string
		wantErr string
	}{
		{name: "unknown_top_level_key", values: "replicas: 3", wantErr: "replicas"},
		{name: "misspelt_nested_key", values: "image: {tagg: v1}", wantErr: "tagg"},
		{name: "misspelt_monitor_key", values: "metrics: {serviceMonitor: {enable: true}}", wantErr: "enable"},
		{name: "replicas_as_string", values: `replicaCount: "2"`, wantErr: "replicaCount"},
		{name: "replicas_zero", values: "replicaCount: 0", wantErr: "replicaCount"},
		{name: "pull_policy_enum", values: "image: {pullPolicy: Sometimes}", wantErr: "pullPolicy"},
		{name: "port_out_of_range", values: "ports: {grpc: 70000}", wantErr: "grpc"},
		{name: "digest_not_sha256", values: "image: {digest: latest}", wantErr: "digest"},
		{name: "traffic_distribution_enum", values: "service: {trafficDistribution: Nearest}", wantErr: "trafficDistribution"},
		{name: "pod_annotation_not_string", values: "podAnnotations: {a: 1}", wantErr: "podAnnotations"},
		{name: "extra_env_without_name", values: "extraEnv: [{value: x}]", wantErr: "name"},
		{name: "pdb_min_available_blocks_drains", values: "replicaCount: 2\npodDisruptionBudget: {minAvailable: 2}", wantErr: "node drains block"},
		{name: "pdb_min_available_vs_hpa_min", values: "autoscaling: {enabled: true, minReplicas: 3}\npodDisruptionBudget: {minAvailable: 3}", wantErr: "node drains block"},
		{name: "pdb_both_set", values: "podDisruptionBudget: {minAvailable: 1, maxUnavailable: 1}", wantErr: "not both"},
		{name: "hpa_max_below_min", values: "autoscaling: {enabled: true, minReplicas: 4, maxReplicas: 2}", wantErr: "maxReplicas"},
		{name: "no_pools", values: "config: {pools: []}", wantErr: "config.pools"},
		{name: "grace_below_prestop", values: "preStopSleepSeconds: 30\nterminationGracePeriodSeconds: 20", wantErr: "terminationGracePeriodSeconds"},
		{name: "grace_below_shutdown_timeout", values: "config: {server: {shutdown_timeout: 60s}}\nterminationGracePeriodSeconds: 45", wantErr: "shutdown_timeout (60s)"},
		{name: "grace_below_shutdown_minutes", values: "config: {server: {shutdown_timeout: 2m}}\nterminationGracePeriodSeconds: 100", wantErr: "shutdown_timeout (120s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := renderChart(t, c, []byte(tt.values))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("render error = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

// TestHelmPDBFollowsMinimum: the derived minAvailable is one less than the replicas that must run.
func TestHelmPDBFollowsMinimum(t *testing.T) {
	t.Parallel()
	c := loadChart(t)
	tests := []struct {
		name   string
		values string
		want   int
	}{
		{name: "one_replica", values: "replicaCount: 1", want: 0},
		{name: "three_replicas", values: "replicaCount: 3", want: 2},
		{name: "hpa_min_one", values: "autoscaling: {enabled: true, minReplicas: 1}", want: 0},
		{name: "hpa_min_five_ignores_replica_count", values: "replicaCount: 1\nautoscaling: {enabled: true, minReplicas: 5, maxReplicas: 9}", want: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wantMinAvailable(t, mustRender(t, c, []byte(tt.values)).PDB, tt.want)
		})
	}
}

// TestHelmSessionKeysFile: with browser sign-in configured and a session key Secret, the config names the
// mounted key file (the key is not decoded with config.Parse: browser.* belongs to the session feature).
func TestHelmSessionKeysFile(t *testing.T) {
	t.Parallel()
	c := loadChart(t)
	tests := []struct {
		name   string
		values string
		want   string
	}{
		{name: "filled_in", values: "sessionKeys: {existingSecret: keys}\nconfig: {browser: {cookie_name: s}, pools: [{name: main, region: us-east-1, user_pool_id: us-east-1_X, client_ids: [c]}]}",
			want: "/etc/cognito-authz/session/session-keys"},
		{name: "custom_key", values: "sessionKeys: {existingSecret: keys, key: ring.json}\nconfig: {browser: {cookie_name: s}, pools: [{name: main, region: us-east-1, user_pool_id: us-east-1_X, client_ids: [c]}]}",
			want: "/etc/cognito-authz/session/ring.json"},
		{name: "user_path_kept", values: "sessionKeys: {existingSecret: keys}\nconfig: {browser: {session_keys_file: /x/y}, pools: [{name: main, region: us-east-1, user_pool_id: us-east-1_X, client_ids: [c]}]}",
			want: "/x/y"},
		{name: "no_browser_section", values: "sessionKeys: {existingSecret: keys}", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := mustRender(t, c, []byte(tt.values))
			var cfg struct {
				Browser map[string]any `json:"browser"`
			}
			if err := yaml.Unmarshal([]byte(r.ConfigMaps[r.Deployment.Name].Data["config.yaml"]), &cfg); err != nil {
				t.Fatal(err)
			}
			got, _ := cfg.Browser["session_keys_file"].(string)
			if got != tt.want {
				t.Errorf("browser.session_keys_file = %q, want %q", got, tt.want)
			}
			wantMount(t, r.container(t), "session-keys", "/etc/cognito-authz/session")
		})
	}
}

func TestHelmSchemaIsStrict(t *testing.T) {
	t.Parallel()
	// Every object in the schema that lists properties must say additionalProperties false, except the
	// service's own config (validated by the service) and pass-through Kubernetes objects.
	var schema map[string]any
	if err := json.Unmarshal(readFile(t, filepath.Join(chartDir, "values.schema.json")), &schema); err != nil {
		t.Fatal(err)
	}
	var walk func(path string, node map[string]any)
	walk = func(path string, node map[string]any) {
		props, ok := node["properties"].(map[string]any)
		if !ok {
			return
		}
		if path != ".config" && node["additionalProperties"] != false {
			t.Errorf("schema %s: properties without additionalProperties: false", path)
		}
		for k, v := range props {
			if m, ok := v.(map[string]any); ok {
				walk(path+"."+k, m)
			}
		}
	}
	walk("", schema)
	// And every key of values.yaml is in the schema (the schema check of the defaults, done by render).
	if _, _, err := renderChart(t, loadChart(t), []byte("{}")); err != nil {
		t.Fatalf("defaults do not pass the schema: %v", err)
	}
	if _, err := os.Stat(filepath.Join(chartDir, "files", "alerts.yaml")); err != nil {
		t.Fatalf("chart files/alerts.yaml: %v", err)
	}
}
