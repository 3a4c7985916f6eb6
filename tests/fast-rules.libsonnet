// Test-only render of the mixin: the same expressions and thresholds, but rule groups
// evaluated every second and every `for` cut to 3s, so end-to-end tests see alerts fire
// in seconds. The shipped files are never edited; see tests/fast_rules.py.
{
  local fast(groups) = [
    g { interval: '1s', rules: [r + (if std.objectHas(r, 'alert') then { 'for': '3s' } else {}) for r in g.rules] }
    for g in groups
  ],
  prometheusRules+:: { groups: fast(super.groups) },
  prometheusAlerts+:: { groups: fast(super.groups) },
}
