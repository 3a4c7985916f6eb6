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

    // The contract's spec of a metric a panel needs. A metric missing from the
    // contract (renamed or removed in contract.py) fails generation: a panel never
    // swaps itself for another one or silently queries a series nobody exports.
    local spec(metric) =
      if std.objectHas(metrics, metric) then metrics[metric]
      else error 'dashboard panel needs metric %s, which is not in llm_exporter.contract (mixin/lib/contract.json): rename it in the dashboards too, or restore it in contract.py' % metric,

    // Name of a sample of a contract metric; fails generation on a typo.
    local sample(metric, suffix) =
      local s = spec(metric);
      if suffix == '' || std.member(s.samples, metric + suffix) then metric + suffix
      else error 'dashboard panel needs %s%s, but the contract metric %s (a %s) has no such sample' % [metric, suffix, metric, s.type],

    // Matchers for the app selector, every dashboard variable the metric has a
    // label for, and extra matchers: 'job="llm-app", provider=~"$provider", ...'.
    // Only the contract's default labels count, never its detail_labels: the histograms
    // carry `feature` only with configure(feature_histograms=True), so a feature matcher
    // on them would match nothing once a feature is picked.
    matchers(metric, extra='')::
      local vars = ['%s=~"$%s"' % [l, l] for l in variableLabels if std.member(spec(metric).labels, l)];
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
    // Grouping by a label the metric lacks by default (a detail label such as the
    // histograms' feature) fails generation: the panel would show one unlabelled series.
    quantile(q, metric, by=[], extra='')::
      local missing = [l for l in by if !std.member(spec(metric).labels, l)];
      if missing != [] then error 'dashboard panel groups %s by %s, not among its labels in llm_exporter.contract %s' % [metric, std.join(', ', missing), std.toString(spec(metric).labels)]
      else 'histogram_quantile(%s, sum by (%s) (%s))' % [
        q,
        std.join(', ', by + ['le']),
        self.rate(metric, extra, '_bucket'),
      ],

    // Description suffix for a panel on `metric` when a dashboard variable does not filter
    // it because its contract labels lack that label (the histograms' feature): the panel
    // covers every value of it. '' when every variable applies.
    unfiltered(metric)::
      local missing = [l for l in variableLabels if !std.member(spec(metric).labels, l)];
      if missing == [] then ''
      else if missing == ['feature'] then ' All features: the feature filter does not apply (%s has no feature label by default).' % metric
      else ' The %s filter does not apply (%s has no such label).' % [std.join(' and ', missing), metric],

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

    // Rare events (errors, refusals, content filtering, unpriced calls, ...): a
    // series appears only with its first event, so a plain query answers nothing,
    // not 0, while there is traffic and no event. These answer 0 for every label
    // set that has traffic and no event, and still nothing without traffic.
    // `rare` and `traffic` are range-vector expressions (rate(...) or
    // increase(...)), aggregated by the same labels `by` so `or` matches per label set.
    sumBy(by, expr):: if by == [] then 'sum(%s)' % expr else 'sum by (%s) (%s)' % [std.join(', ', by), expr],
    orZero(rare, traffic, by=[]):: '(%s or %s * 0)' % [self.sumBy(by, rare), self.sumBy(by, traffic)],
    // Share of `total` that had the event, per label set of `by`: 0 with traffic and no event.
    rareRatio(rare, total, by=[]):: '%s / %s' % [self.orZero(rare, total, by), self.sumBy(by, total)],
    // Rare events by a label the traffic does not carry (error_type, rating): one
    // series `label="none"` at 0 while there is traffic and no event at all.
    orNone(label, rare, traffic):: '(sum by (%s) (%s) or on () label_replace(sum(%s) * 0, "%s", "none", "", ""))' % [label, rare, traffic, label],

    q(expr, legend='__auto'):: g.query.prometheus.new(expr) + g.query.prometheus.withLegendFormat(legend),
  },
}
