// The Grafana dashboards, keyed by output file (grafana/dashboards/<key>).
// Panels use the raw exporter metrics with $__rate_interval (not recording
// rules) so that the provider/model/feature variables filter every panel.
local common = import 'common.libsonnet';

{
  _config+:: {
    // Dashboard defaults; override like any other _config key.
    dashboardTags: ['llm', 'llm-exporter'],
    dashboardTimeRange: '6h',
    dashboardRefresh: '1m',
    // Series shown in the "top k" spend panels.
    dashboardTopK: 10,
    // Alerts shown as annotations (ALERTS{alertstate="firing"}).
    dashboardAlertNameRegex: 'LLM.*',
  },

  local c = common.new($._config),

  grafanaDashboards+:: {
    'llm-overview.json': (import 'overview.libsonnet')(c),
    'llm-cost.json': (import 'cost.libsonnet')(c, $._config),
    'llm-latency-quality.json': (import 'latency-quality.libsonnet')(c),
  },
}
