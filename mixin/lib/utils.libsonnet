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

  // Thresholds as short decimals ('%s' % 0.05 would print 0.050000000000000003).
  num(x):: std.format('%g', x),

  // '5m' -> 300; used to order windows.
  seconds(d):: std.parseInt(d[:std.length(d) - 1]) * unitSeconds[d[std.length(d) - 1]],

  sortWindows(ws):: std.sort(std.set(ws), function(w) self.seconds(w)),

  runbookURL(config, alertname):: config.runbookURLFormat % std.asciiLower(alertname),
  dashboardURL(config, key):: '%s/d/%s' % [config.grafanaURL, config.dashboardUIDs[key]],
}
