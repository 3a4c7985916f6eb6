// Selectors, thresholds and windows shared by rules, alerts and dashboards.
// Override any key without editing this file:
//   python scripts/generate.py --overrides my.libsonnet
// with my.libsonnet = { _config+:: { dailyBudgetUSD: 250, latency+: { warningSeconds: 8 } } }
{
  _config+:: {
    // The scrape job of the app(s) exporting llm_* metrics. The Kubernetes
    // ServiceMonitor/PodMonitor set this job label; prometheus/prometheus.yml names its job the same.
    jobName: 'llm-app',
    // Selects those apps; goes between {} in queries.
    llmSelector: 'job="%s"' % self.jobName,
    // Labels that recording rules keep (the exporter's common labels).
    llmAggregationLabels: 'provider, model, feature',
    // Labels that the histogram-based rules (llm:*_bucket:rate5m, the latency quantiles,
    // llm:tokens_per_request:avg_rate*) and the alerts on them (LLMHighLatency,
    // LLMCriticalLatency, LLMTokenSpike, LLMResponseLengthDrift) keep. The contract's
    // histograms carry provider, model, operation by default: `feature` is a detail label,
    // exposed only when the app calls configure(feature_histograms=True) (the series budget,
    // docs/exporter.md). With that option on, 'provider, model, feature' gives per-feature
    // latency and token alerts; without it those alerts would never fire. Every label here
    // must be a label (or detail label) of each histogram in the contract and one of
    // llmAggregationLabels (the traffic guard is summed by these labels), or generation fails.
    llmHistogramAggregationLabels: 'provider, model',
    // Metric names, label sets and buckets, generated from llm_exporter.contract.
    contract: import 'lib/contract.json',

    // --- Kubernetes (kubernetes/, applied with `kubectl apply -k kubernetes/`) ---
    kubernetes: {
      // Every object goes in this namespace; the AlertmanagerConfig routes only alerts
      // carrying it as their `namespace` label (the operator's default matcher strategy).
      namespace: 'monitoring',
      // Object names (PrometheusRule, ServiceMonitor, PodMonitor, AlertmanagerConfig;
      // the dashboard ConfigMaps are this name plus the dashboard file's).
      name: 'llm-exporter',
      // Labels on every object. The Prometheus and Alertmanager resources pick rules,
      // monitors and AlertmanagerConfigs by label: kube-prometheus-stack selects
      // `release: <its Helm release name>` by default, kube-prometheus selects all.
      labels: { 'app.kubernetes.io/part-of': 'llm-exporter', release: 'kube-prometheus-stack' },
      // The app to scrape: its Services (ServiceMonitor) or Pods (PodMonitor) carry
      // these labels, in these namespaces ([] = any namespace), and name the port serving `path`.
      app: {
        matchLabels: { 'app.kubernetes.io/name': 'llm-app' },
        namespaces: [],
        port: 'metrics',
        path: '/metrics',
      },
      // Grafana's dashboard sidecar loads ConfigMaps with this label (its default);
      // the folder annotation is read when the sidecar sets folderAnnotation to it.
      dashboardLabels: { grafana_dashboard: '1' },
      dashboardAnnotations: { grafana_folder: 'LLM' },
      // The Secret (created by you, never committed) the AlertmanagerConfig reads its keys from.
      alertmanagerSecret: {
        name: 'llm-alertmanager',
        pagerdutyRoutingKey: 'pagerduty-routing-key',
        slackApiURL: 'slack-api-url',
      },
    },

    // --- links carried by every alert -------------------------------------
    grafanaURL: 'http://localhost:3000',
    // Fixed dashboard UIDs (grafana/dashboards); alerts link the closest one.
    dashboardUIDs: {
      overview: 'llm-overview',
      cost: 'llm-cost',
      latencyQuality: 'llm-latency-quality',
    },
    // %s is the lower-cased alert name: the anchor of its section in docs/runbook.md.
    runbookURLFormat: 'https://github.com/llm-exporter/llm-exporter/blob/main/docs/runbook.md#%s',

    // --- guards ---------------------------------------------------------
    // Ratio alerts (error, truncation, latency quantiles, tokens per request,
    // drift) stay silent below this many calls per second per
    // provider/model/feature (0.05/s = 3 calls a minute), and at 0/0. Alerts on the
    // histograms count the calls per llmHistogramAggregationLabels (all features of a model).
    minRequestRate: 0.05,

    // --- thresholds and windows (seed 000 / seed 001 defaults) ---------
    latency: {
      warningQuantile: 0.95,
      warningSeconds: 5,  // LLMHighLatency (seed 000: p95 > 5 s)
      criticalQuantile: 0.99,
      criticalSeconds: 10,  // LLMCriticalLatency (seed 000: p99 > 10 s)
      'for': '5m',
    },

    // Error SLO: share of calls that fail (cancellations excluded). Multi-window
    // multi-burn-rate alerts (SRE workbook): a tier fires when both its long and
    // short window burn the budget `factor` times faster than sustainable.
    // With the 99 % target the page tiers fire at 10 % errors (seed 000's
    // critical threshold) over 1h/5m and at 5 % (its warning threshold) held
    // for 6h/30m; the ticket tiers catch slow burns (3 % over 1d, 1 % over 3d).
    errorSLO: {
      target: 0.99,
      period: '30d',
      windows: [
        { severity: 'critical', long: '1h', short: '5m', factor: 10, 'for': '2m' },
        { severity: 'critical', long: '6h', short: '30m', factor: 5, 'for': '15m' },
        { severity: 'warning', long: '1d', short: '2h', factor: 3, 'for': '1h' },
        { severity: 'warning', long: '3d', short: '6h', factor: 1, 'for': '3h' },
      ],
    },

    // LLMTokenSpike: average tokens (input incl. cache + output incl. reasoning) per call.
    tokenSpike: { avgTokensPerRequest: 10000, 'for': '10m' },

    // LLMCostSpike: the last hour's spend per provider/model/feature is more than
    // `weekOverWeekFactor` x the same hour a week ago and above `floorUSDPerHour`
    // (seed 001), or above `absoluteUSDPerHour` whatever the baseline (seed 000).
    costSpike: { weekOverWeekFactor: 2, floorUSDPerHour: 1, absoluteUSDPerHour: 100, 'for': '5m' },

    // LLMSpendBudgetBurn: spend over the last `window`, projected to 24 h.
    dailyBudgetUSD: 1000,
    spendBudget: { window: '3h', 'for': '15m' },

    // LLMTruncationRateHigh: finish_reason="length" share of calls (seed 001: > 5 %).
    truncation: { ratio: 0.05, 'for': '5m' },
    // LLMRateLimited: rate-limit errors per minute per provider/model (seed 001: > 10).
    rateLimited: { perMinute: 10, 'for': '2m' },
    // LLMContentFilterSpike: content-filtered calls in the last hour (seed 001: > 3).
    contentFilter: { perHour: 3, 'for': '1m' },
    // Drift alerts compare the last `window` with the same window one week earlier
    // (seed 000's DriftDetector: refusal rate +-0.1, response length +-30 %).
    refusalDrift: { window: '1h', absoluteChange: 0.1, 'for': '30m' },
    responseLengthDrift: { window: '1h', relativeChange: 0.3, 'for': '30m' },
    // LLMHedgingRateDrift: share of answered calls (finish reason not error or cancelled)
    // whose response the opt-in hedging detector matched, over `window`, against the same
    // window `baselineOffset` earlier ('1w' or '1d'); seed 000's DriftDetector: +-0.15.
    // Only paths the detector covered in both windows are compared.
    hedgingDrift: { window: '1h', baselineOffset: '1w', absoluteChange: 0.15, 'for': '30m' },
    // LLMEvalScoreDrop: mean evaluation score (llm_eval_score, 0..1) per evaluator over
    // `window` fell by more than `absoluteDrop` against the same window `baselineOffset`
    // earlier. Evaluations are sparse (a sample of calls), hence the long window; both
    // windows need at least `minScores` scores.
    evalScoreDrop: { window: '6h', baselineOffset: '1w', absoluteDrop: 0.1, minScores: 20, 'for': '30m' },
    // LLMRateLimitHeadroomLow: remaining / limit from provider headers.
    rateLimitHeadroom: { ratio: 0.1, 'for': '5m' },
    // LLMUnpricedModel: calls whose model is missing from the price table.
    unpriced: { severity: 'info', 'for': '15m' },
    // LLMExporterDown: scrape target down or absent.
    exporterDown: { severity: 'critical', 'for': '5m' },
  },
}
