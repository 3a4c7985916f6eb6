// The llm-exporter monitoring mixin: one _config, recording rules, alerts,
// dashboards and the Kubernetes objects. Rendered by scripts/generate.py into
// prometheus/rules/, grafana/dashboards/ and kubernetes/. Override thresholds with
//   python scripts/generate.py --overrides my-overrides.libsonnet
// where my-overrides.libsonnet is e.g. { _config+:: { dailyBudgetUSD: 500 } }.
(import 'config.libsonnet') +
(import 'rules/rules.libsonnet') +
(import 'alerts/alerts.libsonnet') +
(import 'dashboards/dashboards.libsonnet') +
(import 'kubernetes/kubernetes.libsonnet')
