// Prometheus Operator objects for kubernetes/ (scripts/generate.py writes them, with the
// dashboard ConfigMaps, the AlertmanagerConfig and the kustomizations). Keyed by the path
// under kubernetes/. Everything configurable is in _config.kubernetes.
{
  local cfg = $._config,
  local k = cfg.kubernetes,

  local metadata = { name: k.name, namespace: k.namespace, labels: k.labels },

  // The operator names the job after the Service (or namespace/PodMonitor); the rules
  // and dashboards select on jobName, so set it whatever the Service is called.
  local endpoint = {
    port: k.app.port,
    path: k.app.path,
    relabelings: [{ action: 'replace', targetLabel: 'job', replacement: cfg.jobName }],
  },
  local monitorSpec = {
    selector: { matchLabels: k.app.matchLabels },
    namespaceSelector: if std.length(k.app.namespaces) == 0 then { any: true } else { matchNames: k.app.namespaces },
  },

  // Alerts aggregate the app's namespace away; the operator routes an AlertmanagerConfig
  // only the alerts whose namespace label is the AlertmanagerConfig's own, so they carry it.
  local withNamespace(groups) = [
    g { rules: [r { labels+: { namespace: k.namespace } } for r in g.rules] }
    for g in groups
  ],

  kubernetesManifests+:: {
    // The monitors set job="<jobName>"; rules selecting another job would stay empty.
    assert std.length(std.findSubstr('job="%s"' % cfg.jobName, cfg.llmSelector)) > 0 :
           '_config.llmSelector (%s) must select job="%s" (_config.jobName), the job the monitors set' % [cfg.llmSelector, cfg.jobName],

    'prometheusrule.yaml': {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PrometheusRule',
      metadata: metadata,
      spec: { groups: $.prometheusRules.groups + withNamespace($.prometheusAlerts.groups) },
    },
    'servicemonitor.yaml': {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'ServiceMonitor',
      metadata: metadata,
      spec: monitorSpec { endpoints: [endpoint] },
    },
    'podmonitor.yaml': {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PodMonitor',
      metadata: metadata,
      spec: monitorSpec { podMetricsEndpoints: [endpoint] },
    },
  },
}
