// Alerting rules. Names are fixed (docs/runbook.md has one section per alert).
// Every alert: a severity label, a static summary, a templated description,
// runbook_url and dashboard_url. Ratio alerts carry the minimum-traffic guard
// `and llm:requests:rate<w> > minRequestRate` and never fire at 0/0.
local u = import '../lib/utils.libsonnet';

{
  local cfg = $._config,
  local sel = cfg.llmSelector,
  local guard(w) = 'llm:requests:rate%s > %s' % [w, u.num(cfg.minRequestRate)],
  local who = '{{ $labels.provider }}/{{ $labels.model }} (feature {{ $labels.feature }})',

  // Alerts on the histograms (latency, tokens per call) are per llmHistogramAggregationLabels:
  // provider/model by default, every feature of the model together (the histograms carry
  // `feature` only with configure(feature_histograms=True)). Their traffic guard sums the
  // per-feature request rate by the same labels, so `and` matches label set for label set.
  local hby = u.histogramBy(cfg, ['llm_request_duration_seconds', 'llm_tokens_per_request']),
  local histGuard(w, offset='') =
    'sum by (%s) (llm:requests:rate%s%s) > %s' % [hby, w, (if offset == '' then '' else ' offset ' + offset), u.num(cfg.minRequestRate)],
  local histWho =
    if std.member(u.labelList(hby), 'feature') then who
    else '{{ $labels.provider }}/{{ $labels.model }} (all features)',

  local alert(name, severity, forDuration, expr, summary, description, dashboard='overview', labels={}) = {
    alert: name,
    expr: expr,
    'for': forDuration,
    labels: { severity: severity } + labels,
    annotations: {
      summary: summary,
      description: description,
      runbook_url: u.runbookURL(cfg, name),
      dashboard_url: u.dashboardURL(cfg, dashboard),
    },
  },

  local latency = cfg.latency,
  local latencyAlert(name, severity, q, seconds) = alert(
    name,
    severity,
    latency['for'],
    |||
      histogram_quantile(%(q)s, llm:request_duration_seconds_bucket:rate5m) > %(s)s
      and %(guard)s
    ||| % { q: u.num(q), s: u.num(seconds), guard: histGuard('5m') },
    'LLM call latency p%d is above %s s.' % [q * 100, u.num(seconds)],
    '%s: p%d latency is {{ $value | humanizeDuration }} over the last 5m (threshold %s s).' % [histWho, q * 100, u.num(seconds)],
    'latencyQuality',
  ),

  local slo = cfg.errorSLO,
  local budget = 1 - slo.target,
  local burnAlert(tier) = alert(
    'LLMHighErrorRate',
    tier.severity,
    tier['for'],
    |||
      llm:error_ratio:rate%(long)s > %(t)s
      and llm:error_ratio:rate%(short)s > %(t)s
      and %(guard)s
    ||| % { long: tier.long, short: tier.short, t: u.num(tier.factor * budget), guard: guard(tier.short) },
    'LLM calls are failing fast enough to exhaust the error budget.',
    ('%s: {{ $value | humanizePercentage }} of calls failed over the last %s (and over %s), above %s: '
     + '%sx the error budget of the %s%% SLO over %s.') % [
      who,
      tier.long,
      tier.short,
      std.format('%g%%', tier.factor * budget * 100),
      u.num(tier.factor),
      u.num(slo.target * 100),
      slo.period,
    ],
    labels={ long: tier.long, short: tier.short },
  ),

  // '1w' -> 'one week' in descriptions
  local offsetText(o) = std.get({ '1w': 'one week', '1d': 'one day' }, o, o),

  local cost = cfg.costSpike,
  local refusal = cfg.refusalDrift,
  local length = cfg.responseLengthDrift,
  local hedging = cfg.hedgingDrift,
  local evalDrop = cfg.evalScoreDrop,

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'llm-latency',
        rules: [
          latencyAlert('LLMHighLatency', 'warning', latency.warningQuantile, latency.warningSeconds),
          latencyAlert('LLMCriticalLatency', 'critical', latency.criticalQuantile, latency.criticalSeconds),
        ],
      },
      {
        name: 'llm-errors',
        rules: [burnAlert(tier) for tier in slo.windows] + [
          alert(
            'LLMTruncationRateHigh',
            'warning',
            cfg.truncation['for'],
            |||
              llm:finish_reason_ratio:rate5m{finish_reason="length"} > %s
              and ignoring (finish_reason) %s
            ||| % [u.num(cfg.truncation.ratio), guard('5m')],
            'LLM responses are being truncated at the token limit.',
            '%s: {{ $value | humanizePercentage }} of calls over the last 5m stopped at the max-tokens limit (finish_reason="length"; threshold %s).' % [who, std.format('%g%%', cfg.truncation.ratio * 100)],
            'latencyQuality',
          ),
          alert(
            'LLMRateLimited',
            'warning',
            cfg.rateLimited['for'],
            |||
              sum by (provider, model) (llm:errors_by_type:rate5m{error_type="rate_limit"}) * 60 > %s
            ||| % u.num(cfg.rateLimited.perMinute),
            'LLM provider is rate-limiting calls.',
            '{{ $labels.provider }}/{{ $labels.model }}: {{ $value | humanize }} rate-limit errors per minute over the last 5m (threshold %s).' % u.num(cfg.rateLimited.perMinute),
          ),
          alert(
            'LLMContentFilterSpike',
            'warning',
            cfg.contentFilter['for'],
            |||
              sum by (provider, model, feature) (
                increase(%(req)s{%(sel)s, finish_reason="content_filter"}[1h])
                or
                increase(%(err)s{%(sel)s, error_type="content_filter"}[1h])
              ) > %(n)s
            ||| % { req: u.metric('llm_requests_total'), err: u.metric('llm_errors_total'), sel: sel, n: u.num(cfg.contentFilter.perHour) },
            'LLM calls are being blocked by content filters.',
            '%s: {{ $value | humanize }} calls were content-filtered in the last hour (threshold %s).' % [who, u.num(cfg.contentFilter.perHour)],
            'latencyQuality',
          ),
          alert(
            'LLMRateLimitHeadroomLow',
            'warning',
            cfg.rateLimitHeadroom['for'],
            // Each replica exposes the headers of its own latest call (one quota, seen per
            // pod): the lowest headroom any replica saw, once per provider/model/resource.
            |||
              min by (provider, model, resource) (
                %(rem)s{%(sel)s} / %(lim)s{%(sel)s}
              ) < %(r)s
              and on (provider, model)
              sum by (provider, model) (llm:requests:rate5m) > 0
            ||| % { rem: u.metric('llm_ratelimit_remaining'), lim: u.metric('llm_ratelimit_limit'), sel: sel, r: u.num(cfg.rateLimitHeadroom.ratio) },
            'LLM rate-limit headroom is nearly used up.',
            '{{ $labels.provider }}/{{ $labels.model }}: only {{ $value | humanizePercentage }} of the {{ $labels.resource }} rate limit remains (threshold %s).' % std.format('%g%%', cfg.rateLimitHeadroom.ratio * 100),
          ),
        ],
      },
      {
        name: 'llm-cost',
        rules: [
          alert(
            'LLMCostSpike',
            'warning',
            cost['for'],
            |||
              (
                llm:cost_usd:rate1h * 3600 > %(f)s * 3600 * (llm:cost_usd:rate1h offset 1w)
                and llm:cost_usd:rate1h * 3600 > %(floor)s
              )
              or llm:cost_usd:rate1h * 3600 > %(abs)s
            ||| % { f: u.num(cost.weekOverWeekFactor), floor: u.num(cost.floorUSDPerHour), abs: u.num(cost.absoluteUSDPerHour) },
            'LLM spend is spiking.',
            ('%s: spend over the last hour is ${{ $value | printf "%%.2f" }}, more than %sx the same hour last week '
             + '(and above $%s), or above the $%s/h limit.') % [who, u.num(cost.weekOverWeekFactor), u.num(cost.floorUSDPerHour), u.num(cost.absoluteUSDPerHour)],
            'cost',
          ),
          alert(
            'LLMSpendBudgetBurn',
            'warning',
            cfg.spendBudget['for'],
            |||
              sum(rate(%s{%s}[%s])) * 86400 > %s
            ||| % [u.metric('llm_cost_usd_total'), sel, cfg.spendBudget.window, u.num(cfg.dailyBudgetUSD)],
            'Projected daily LLM spend exceeds the budget.',
            'At the rate of the last %s, LLM spend projects to ${{ $value | printf "%%.2f" }} a day, above the daily budget of $%s.' % [cfg.spendBudget.window, u.num(cfg.dailyBudgetUSD)],
            'cost',
          ),
          alert(
            'LLMTokenSpike',
            'warning',
            cfg.tokenSpike['for'],
            |||
              sum without (direction) (llm:tokens_per_request:avg_rate5m) > %s
              and %s
            ||| % [u.num(cfg.tokenSpike.avgTokensPerRequest), histGuard('5m')],
            'LLM calls use unusually many tokens per request.',
            '%s: calls averaged {{ $value | humanize }} tokens (input + output) over the last 5m (threshold %s).' % [histWho, u.num(cfg.tokenSpike.avgTokensPerRequest)],
            'cost',
          ),
          alert(
            'LLMUnpricedModel',
            cfg.unpriced.severity,
            cfg.unpriced['for'],
            |||
              llm:unpriced_requests:rate5m > 0
            |||,
            'LLM calls use a model with no price.',
            '{{ $labels.provider }}/{{ $labels.model }} has no entry in the price table: its {{ $value | printf "%.3g" }} calls/s are missing from llm_cost_usd_total. Add it to a pricing file (LLM_EXPORTER_PRICING).',
            'cost',
          ),
        ],
      },
      {
        name: 'llm-quality',
        rules: [
          alert(
            'LLMRefusalRateDrift',
            'warning',
            refusal['for'],
            |||
              abs(llm:refusal_ratio:rate%(w)s - llm:refusal_ratio:rate%(w)s offset 1w) > %(d)s
              and %(guard)s
              and %(guardBefore)s
            ||| % {
              w: refusal.window,
              d: u.num(refusal.absoluteChange),
              guard: guard(refusal.window),
              guardBefore: '(%s offset 1w) > %s' % ['llm:requests:rate' + refusal.window, u.num(cfg.minRequestRate)],
            },
            'LLM refusal rate has drifted from last week.',
            '%s: the share of refused responses over the last %s moved by {{ $value | humanizePercentage }} (absolute) against the same window one week earlier (threshold %s).' % [who, refusal.window, std.format('%g%%', refusal.absoluteChange * 100)],
            'latencyQuality',
          ),
          alert(
            'LLMResponseLengthDrift',
            'warning',
            length['for'],
            |||
              abs(
                llm:tokens_per_request:avg_rate%(w)s{direction="output"}
                - llm:tokens_per_request:avg_rate%(w)s{direction="output"} offset 1w
              )
              / (llm:tokens_per_request:avg_rate%(w)s{direction="output"} offset 1w > 0)
              > %(d)s
              and ignoring (direction) %(guard)s
              and ignoring (direction) %(guardBefore)s
            ||| % {
              w: length.window,
              d: u.num(length.relativeChange),
              guard: histGuard(length.window),
              guardBefore: histGuard(length.window, '1w'),
            },
            'LLM response length has drifted from last week.',
            '%s: average output tokens per call over the last %s differ by {{ $value | humanizePercentage }} from the same window one week earlier (threshold %s).' % [histWho, length.window, std.format('%g%%', length.relativeChange * 100)],
            'latencyQuality',
          ),
          alert(
            'LLMHedgingRateDrift',
            'warning',
            hedging['for'],
            |||
              abs(llm:hedged_ratio:rate%(w)s - llm:hedged_ratio:rate%(w)s offset %(o)s) > %(d)s
              and %(guard)s
              and %(guardBefore)s
            ||| % {
              w: hedging.window,
              o: hedging.baselineOffset,
              d: u.num(hedging.absoluteChange),
              guard: guard(hedging.window),
              guardBefore: '(%s offset %s) > %s' % ['llm:requests:rate' + hedging.window, hedging.baselineOffset, u.num(cfg.minRequestRate)],
            },
            'LLM responses hedge more or less often than before.',
            '%s: the share of answers with hedging phrases ("I think", "probably", ...) over the last %s moved by {{ $value | humanizePercentage }} (absolute) against the same window %s earlier (threshold %s).' % [who, hedging.window, offsetText(hedging.baselineOffset), std.format('%g%%', hedging.absoluteChange * 100)],
            'latencyQuality',
          ),
          alert(
            'LLMEvalScoreDrop',
            'warning',
            evalDrop['for'],
            |||
              (llm:eval_score:mean_rate%(w)s offset %(o)s) - llm:eval_score:mean_rate%(w)s > %(d)s
              and llm:eval_scores:rate%(w)s * %(s)s >= %(n)s
              and (llm:eval_scores:rate%(w)s offset %(o)s) * %(s)s >= %(n)s
            ||| % {
              w: evalDrop.window,
              o: evalDrop.baselineOffset,
              d: u.num(evalDrop.absoluteDrop),
              s: u.seconds(evalDrop.window),
              n: u.num(evalDrop.minScores),
            },
            'LLM evaluation scores have dropped.',
            '%s: the mean {{ $labels.evaluator }} score over the last %s is {{ $value | printf "%%.2f" }} lower than in the same window %s earlier (threshold %s, at least %s scores in each window).' % [who, evalDrop.window, offsetText(evalDrop.baselineOffset), u.num(evalDrop.absoluteDrop), u.num(evalDrop.minScores)],
            'latencyQuality',
          ),
        ],
      },
      {
        name: 'llm-exporter',
        rules: [
          alert(
            'LLMExporterDown',
            cfg.exporterDown.severity,
            cfg.exporterDown['for'],
            // Once per job, when no replica is scraped: that is when the other alerts are
            // blind (and Alertmanager mutes them). One replica down or restarting leaves
            // the others' calls visible; its pod is Kubernetes' alerts' business.
            |||
              max by (job) (up{%(sel)s}) == 0
              or
              absent(up{%(sel)s})
            ||| % { sel: sel },
            'LLM metrics target is down or missing.',
            'Prometheus has no llm-exporter metrics from job {{ $labels.job }}: no target is up or none is discovered, for %s. The other LLM alerts are blind until one is back.' % cfg.exporterDown['for'],
          ),
        ],
      },
    ],
  },
}
