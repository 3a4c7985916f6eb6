// Small helpers for rules and alerts. Metric names go through metric()/bucket()/...
// so that rendering fails on any name the exporter's contract does not define.
local contract = import 'contract.json';

local spec(name) =
  if std.objectHas(contract.metrics, name) then contract.metrics[name]
  else error 'metric %s is not in llm_exporter.contract' % name;

local histogramSample(name, suffix) =
  if spec(name).type == 'histogram' then name + suffix
  else error '%s is a %s, not a histogram' % [name, spec(name).type];

local unitSeconds = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

{
  // An exposed family name (counters already end in _total).
  metric(name):: if std.objectHas(spec(name), 'type') then name,
  bucket(name):: histogramSample(name, '_bucket'),
  sum(name):: histogramSample(name, '_sum'),
  count(name):: histogramSample(name, '_count'),

  // 'provider, model' -> ['provider', 'model']
  labelList(s):: [l for l in [std.stripChars(x, ' ') for x in std.split(s, ',')] if l != ''],

  // The labels rules over the histograms `names` aggregate by (config.llmHistogramAggregationLabels),
  // checked against the contract: each must be a label or a detail label of every one of them
  // (else the rule would aggregate by a label no series has), and one of
  // config.llmAggregationLabels (the traffic guard sums llm:requests:* by the same labels).
  histogramBy(config, names)::
    local labels = self.labelList(config.llmHistogramAggregationLabels);
    local kept = self.labelList(config.llmAggregationLabels);
    local problems = [
      '%s is not a label of %s in llm_exporter.contract' % [l, n]
      for n in names
      for l in labels
      if !std.member(spec(n).labels + std.get(spec(n), 'detail_labels', []), l)
    ] + [
      '%s is not one of llmAggregationLabels (%s)' % [l, config.llmAggregationLabels]
      for l in labels
      if !std.member(kept, l)
    ] + [
      '%s is a %s, not a histogram' % [n, spec(n).type]
      for n in names
      if spec(n).type != 'histogram'
    ];
    if problems != [] then error 'llmHistogramAggregationLabels: ' + std.join('; ', problems)
    else std.join(', ', labels),

  // Thresholds as short decimals ('%s' % 0.05 would print 0.050000000000000003).
  num(x):: std.format('%g', x),

  // '5m' -> 300; used to order windows.
  seconds(d):: std.parseInt(d[:std.length(d) - 1]) * unitSeconds[d[std.length(d) - 1]],

  sortWindows(ws):: std.sort(std.set(ws), function(w) self.seconds(w)),

  runbookURL(config, alertname):: config.runbookURLFormat % std.asciiLower(alertname),
  dashboardURL(config, key):: '%s/d/%s' % [config.grafanaURL, config.dashboardUIDs[key]],
}
