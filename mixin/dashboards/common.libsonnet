// Pieces every LLM dashboard shares: selectors built from the metric contract,
// the variables, the firing-alerts annotation and links between dashboards.
local g = import '../lib/grafana.libsonnet';

{
  new(config):: {
    local cfg = config,
    local metrics = cfg.contract.metrics,
    local variableLabels = ['provider', 'model', 'feature'],

    // Fixed UIDs from _config (alerts link to /d/<uid>).
    uids:: cfg.dashboardUIDs,

    // Name of a sample of a contract metric; fails generation on a typo.
    local sample(metric, suffix) =
      assert std.objectHas(metrics, metric) : 'metric %s is not in the contract' % metric;
      assert suffix == '' || std.member(metrics[metric].samples, metric + suffix) : '%s has no %s sample' % [metric, suffix];
      metric + suffix,

    // Matchers for the app selector, every dashboard variable the metric has a
    // label for, and extra matchers: 'job="llm-app", provider=~"$provider", ...'.
    matchers(metric, extra='')::
      local vars = ['%s=~"$%s"' % [l, l] for l in variableLabels if std.member(metrics[metric].labels, l)];
      std.join(', ', [cfg.llmSelector] + vars + (if extra == '' then [] else [extra])),

    // metric{matchers}
    m(metric, extra='', suffix=''):: '%s{%s}' % [sample(metric, suffix), self.matchers(metric, extra)],

    // rate(metric{...}[$__rate_interval]) / increase(...)
    rate(metric, extra='', suffix=''):: 'rate(%s[$__rate_interval])' % self.m(metric, extra, suffix),
    // Totals over the panel's time range (stat and table panels only).
    increaseRange(metric, extra='', suffix=''):: 'increase(%s[$__range])' % self.m(metric, extra, suffix),

    // '0.95' -> 'p95' (quantiles are strings: 0.95 would print as 0.94999...).
    percentile(q):: local d = std.substr(q, 2, std.length(q) - 2); 'p' + (if std.length(d) == 1 then d + '0' else d),
    // histogram_quantile over a contract histogram, grouped by `by` (a list).
    quantile(q, metric, by=[], extra=''):: 'histogram_quantile(%s, sum by (%s) (%s))' % [
      q,
      std.join(', ', by + ['le']),
      self.rate(metric, extra, '_bucket'),
    ],

    variables:: [
      g.variable.datasource('datasource', 'prometheus', 'Data source'),
      g.variable.labelValues('provider', 'provider', 'llm_requests_total', cfg.llmSelector),
      g.variable.labelValues('model', 'model', 'llm_requests_total', '%s, provider=~"$provider"' % cfg.llmSelector),
      g.variable.labelValues('feature', 'feature', 'llm_requests_total', '%s, provider=~"$provider", model=~"$model"' % cfg.llmSelector),
    ],

    // ALERTS carries the alert's labels, not the scrape job's, so it is
    // filtered by alert name instead of llmSelector.
    annotations:: [
      g.annotation.builtIn(),
      g.annotation.prometheus(
        'Firing LLM alerts',
        'ALERTS{alertstate="firing", alertname=~"%s"}' % cfg.dashboardAlertNameRegex,
        '{{alertname}}',
        '{{severity}}: {{provider}} {{model}} {{feature}}',
        'severity,alertname',
      ),
    ],

    // Dashboard with the shared variables, annotations, links and tags.
    dashboard(title, uid, description, panels)::
      g.dashboard.new(title, uid)
      + g.dashboard.withDescription(description)
      + g.dashboard.withTags(cfg.dashboardTags)
      + g.dashboard.withTime('now-%s' % cfg.dashboardTimeRange)
      + g.dashboard.withRefresh(cfg.dashboardRefresh)
      + g.dashboard.withVariables(self.variables)
      + g.dashboard.withAnnotations(self.annotations)
      + g.dashboard.withLinks([g.dashboard.link.dashboards('LLM dashboards', cfg.dashboardTags)])
      + g.dashboard.withPanels(panels),

    // Panel constructors with the fields every panel must have.
    local withBasics(panel, description, unit, targets, w, h) =
      panel
      + g.panel.withDescription(description)
      + g.panel.withUnit(unit)
      + g.panel.withTargets(targets)
      + g.panel.withGridPos(w, h),

    timeSeries(title, description, unit, targets, w=12, h=8)::
      withBasics(g.panel.timeSeries.new(title), description, unit, targets, w, h),
    stat(title, description, unit, targets, w=4, h=4)::
      withBasics(g.panel.stat.new(title), description, unit, targets, w, h),
    table(title, description, unit, targets, w=12, h=8)::
      withBasics(g.panel.table.new(title), description, unit, targets, w, h),
    heatmap(title, description, unit, targets, w=12, h=8)::
      withBasics(g.panel.heatmap.new(title), description, unit, targets, w, h)
      + g.panel.heatmap.withYUnit(unit),
    barGauge(title, description, unit, targets, w=12, h=8)::
      withBasics(g.panel.barGauge.new(title), description, unit, targets, w, h),

    q(expr, legend='__auto'):: g.query.prometheus.new(expr) + g.query.prometheus.withLegendFormat(legend),
  },
}
