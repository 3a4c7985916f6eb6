// Recording rules: per provider/model/feature rates that the alerts and the
// dashboards share; the histogram rules per provider/model (the histograms have no
// feature label by default: _config.llmHistogramAggregationLabels). Names follow level:metric:operation (llm:<what>:rate<window>)
// and are listed in docs/alerts.md; dashboards depend on them, keep them stable.
local u = import '../lib/utils.libsonnet';

{
  local cfg = $._config,
  local by = cfg.llmAggregationLabels,
  local sel = cfg.llmSelector,
  // Histograms aggregate by fewer labels: with configure(feature_histograms=True) their
  // series carry `feature` too and these sums add the features up.
  local hby(name) = u.histogramBy(cfg, [name]),

  // Windows with a recorded request rate / error ratio: 5m and 1h for the
  // dashboards and fast alerts, plus every error-SLO burn-rate window.
  local sloWindows = std.flattenArrays([[w.long, w.short] for w in cfg.errorSLO.windows]),
  local hedgingWindow = cfg.hedgingDrift.window,
  local evalWindow = cfg.evalScoreDrop.window,
  local windows = u.sortWindows(['5m', '1h'] + sloWindows + [hedgingWindow, evalWindow]),

  // Requests, SLO errors (cancellations are the caller's choice, not a
  // failure) and their ratio. A series with calls but no errors gets ratio 0;
  // no calls gives 0/0 = NaN, which no comparison matches.
  local sloRules(w) = [
    {
      record: 'llm:requests:rate%s' % w,
      expr: 'sum by (%s) (rate(%s{%s}[%s]))' % [by, u.metric('llm_requests_total'), sel, w],
    },
    {
      record: 'llm:errors:rate%s' % w,
      expr: 'sum by (%s) (rate(%s{%s, error_type!="cancelled"}[%s]))' % [by, u.metric('llm_errors_total'), sel, w],
    },
    {
      record: 'llm:error_ratio:rate%s' % w,
      expr: '(llm:errors:rate%(w)s or llm:requests:rate%(w)s * 0)\n/\nllm:requests:rate%(w)s' % { w: w },
    },
  ],

  local histogramRules(name, short, quantiles) = [
    {
      record: 'llm:%s_bucket:rate5m' % short,
      expr: 'sum by (%s, le) (rate(%s{%s}[5m]))' % [hby(name), u.bucket(name), sel],
    },
  ] + [
    {
      record: 'llm:%s:p%d_rate5m' % [short, q * 100],
      expr: 'histogram_quantile(%s, llm:%s_bucket:rate5m)' % [u.num(q), short],
    }
    for q in quantiles
  ],

  // Mean tokens per call by direction (a histogram: its sum over its count).
  local tokensPerRequest(w) = {
    record: 'llm:tokens_per_request:avg_rate%s' % w,
    expr: 'sum by (%(by)s, direction) (rate(%(sum)s{%(sel)s}[%(w)s]))\n/\nsum by (%(by)s, direction) (rate(%(count)s{%(sel)s}[%(w)s]))' % {
      by: hby('llm_tokens_per_request'),
      sel: sel,
      w: w,
      sum: u.sum('llm_tokens_per_request'),
      count: u.count('llm_tokens_per_request'),
    },
  },

  // Extra rules for the 5m window: what the dashboards plot.
  local extra5m =
    [
      {
        record: 'llm:requests_by_finish_reason:rate5m',
        expr: 'sum by (%s, finish_reason) (rate(%s{%s}[5m]))' % [by, u.metric('llm_requests_total'), sel],
      },
      {
        record: 'llm:finish_reason_ratio:rate5m',
        expr: 'llm:requests_by_finish_reason:rate5m\n/ ignoring (finish_reason) group_left\nllm:requests:rate5m',
      },
      {
        record: 'llm:errors_by_type:rate5m',
        expr: 'sum by (%s, error_type) (rate(%s{%s}[5m]))' % [by, u.metric('llm_errors_total'), sel],
      },
      {
        record: 'llm:retries:rate5m',
        expr: 'sum by (%s) (rate(%s{%s}[5m]))' % [by, u.metric('llm_retries_total'), sel],
      },
      {
        record: 'llm:tokens_by_type:rate5m',
        expr: 'sum by (%s, token_type) (rate(%s{%s}[5m]))' % [by, u.metric('llm_tokens_total'), sel],
      },
      tokensPerRequest('5m'),
      {
        record: 'llm:cost_usd:rate5m',
        expr: 'sum by (%s) (rate(%s{%s}[5m]))' % [by, u.metric('llm_cost_usd_total'), sel],
      },
      {
        record: 'llm:unpriced_requests:rate5m',
        expr: 'sum by (provider, model) (rate(%s{%s}[5m]))' % [u.metric('llm_unpriced_requests_total'), sel],
      },
    ]
    + histogramRules('llm_request_duration_seconds', 'request_duration_seconds', [0.5, 0.95, 0.99])
    + histogramRules('llm_time_to_first_token_seconds', 'time_to_first_token_seconds', [0.5, 0.95])
    + histogramRules('llm_time_per_output_token_seconds', 'time_per_output_token_seconds', [0.5]),

  // Extra rules for the 1h window: cost baseline and drift inputs.
  local extra1h = [
    {
      record: 'llm:cost_usd:rate1h',
      expr: 'sum by (%s) (rate(%s{%s}[1h]))' % [by, u.metric('llm_cost_usd_total'), sel],
    },
    tokensPerRequest('1h'),
    {
      record: 'llm:refusal_ratio:rate1h',
      expr: '(sum by (%s) (rate(%s{%s}[1h])) or llm:requests:rate1h * 0)\n/\nllm:requests:rate1h' % [by, u.metric('llm_refusals_total'), sel],
    },
  ],

  local extras = { '5m': extra5m, '1h': extra1h },

  // Hedging drift input: hedged / answered calls (errors and cancellations have no answer
  // to hedge, and an error burst must not read as a hedging drop). No `or ... * 0`: the
  // ratio exists only where the detector ran (its counter exists from the first call it
  // saw), so a detector switched on is not a drift from 0.
  local hedgingRules(w) = [
    {
      record: 'llm:hedged_ratio:rate%s' % w,
      expr: 'sum by (%(by)s) (rate(%(hedged)s{%(sel)s}[%(w)s]))\n/\nsum by (%(by)s) (rate(%(req)s{%(sel)s, finish_reason!~"error|cancelled"}[%(w)s]))' % {
        by: by,
        sel: sel,
        w: w,
        hedged: u.metric('llm_hedged_responses_total'),
        req: u.metric('llm_requests_total'),
      },
    },
  ],

  // Evaluation scores per evaluator: how many, and their mean (NaN without scores).
  local evalRules(w) = [
    {
      record: 'llm:eval_scores:rate%s' % w,
      expr: 'sum by (%s, evaluator) (rate(%s{%s}[%s]))' % [by, u.count('llm_eval_score'), sel, w],
    },
    {
      record: 'llm:eval_score:mean_rate%s' % w,
      expr: 'sum by (%(by)s, evaluator) (rate(%(sum)s{%(sel)s}[%(w)s]))\n/\nllm:eval_scores:rate%(w)s' % {
        by: by,
        sel: sel,
        w: w,
        sum: u.sum('llm_eval_score'),
      },
    },
  ],

  local qualityRules(w) =
    (if w == hedgingWindow then hedgingRules(w) else [])
    + (if w == evalWindow then evalRules(w) else []),

  prometheusRules+:: {
    groups+: [
      {
        name: 'llm-rates-%s' % w,
        rules: sloRules(w) + std.get(extras, w, []) + qualityRules(w),
      }
      for w in windows
    ],
  },
}
