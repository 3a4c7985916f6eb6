// LLM latency and quality: distributions, decode speed, refusals, response
// length drift, user feedback, hedging and evaluation scores.
local g = import '../lib/grafana.libsonnet';

function(c)
  local heatmapOf(metric) = c.q('sum by (le) (%s)' % c.rate(metric, suffix='_bucket')) + g.query.prometheus.asHeatmap();
  local outputLength(offset) =
    local o = if offset == '' then '' else ' offset ' + offset;
    'sum(%s%s) / sum(%s%s)' % [
      c.rate('llm_tokens_per_request', 'direction="output"', '_sum'),
      o,
      c.rate('llm_tokens_per_request', 'direction="output"', '_count'),
      o,
    ];
  // Seed 000's other quality signals: hedging phrases (opt-in detector) and evaluation
  // scores (record_score or the LLM judge), 0..1 per evaluator.
  local evaluationPanels = [
    g.row.new('Hedging and evaluation scores'),
    c.timeSeries('Hedging rate by model', 'Share of answered calls (finish reason not error or cancelled) whose response the opt-in hedging detector matched ("I think", "probably", ...), by model. Only models the detector ran on.', 'percentunit', [
      c.q('sum by (model) (%s) / sum by (model) (%s)' % [
        c.rate('llm_hedged_responses_total'),
        c.rate('llm_requests_total', 'finish_reason!~"error|cancelled"'),
      ], '{{model}}'),
    ], w=8),
    c.timeSeries('Evaluation scores', 'Mean and 10th percentile of evaluation scores (0 to 1) by evaluator and evaluated model, from record_score() or the LLM judge. Evaluations are usually a sample of calls: expect gaps at short ranges.', 'none', [
      c.q('sum by (evaluator, model) (%s) / sum by (evaluator, model) (%s)' % [
        c.rate('llm_eval_score', suffix='_sum'),
        c.rate('llm_eval_score', suffix='_count'),
      ], 'mean {{evaluator}} {{model}}'),
      c.q(c.quantile('0.1', 'llm_eval_score', ['evaluator', 'model']), 'p10 {{evaluator}} {{model}}'),
    ], w=8) + g.panel.withMin(0) + g.panel.withMax(1),
    c.stat('Unscored evaluations in range', 'Evaluations that produced no score in the selected range: judge answers that were not a number from 0 to 1, and failed judge calls (llm_eval_failures_total).', 'short', [
      c.q('sum(%s)' % c.increaseRange('llm_eval_failures_total'), 'unscored') + g.query.prometheus.asInstant(),
    ], w=8, h=8) + g.panel.stat.withGraphMode('none'),
  ];
  // rate(x[..]) offset 1w must put the offset inside rate(): insert before ')'.
  local shifted(expr) = std.strReplace(expr, '[$__rate_interval])', '[$__rate_interval] offset 1w)');
  c.dashboard(
    'LLM latency and quality',
    c.uids.latencyQuality,
    'Latency and time-to-first-token distributions, decode speed, latency p95 and p99 by model, refusals, response length drift, user feedback, hedging and evaluation scores.',
    [
      g.row.new('Latency'),
      c.heatmap('Latency distribution', 'Calls per second by wall-time bucket (streams: until the stream ends).' + c.unfiltered('llm_request_duration_seconds'), 's', [
        heatmapOf('llm_request_duration_seconds'),
      ]),
      c.heatmap('Time to first token distribution', 'Streams only: calls per second by time-to-first-token bucket.' + c.unfiltered('llm_time_to_first_token_seconds'), 's', [
        heatmapOf('llm_time_to_first_token_seconds'),
      ]),
      // By provider and model, as LLMHighLatency and LLMCriticalLatency evaluate them. There is
      // no per-feature latency panel: the histograms have no feature label by default.
      c.timeSeries('Latency p95 by model', 'Wall time of 95 % of calls, by provider and model: what LLMHighLatency alerts on.' + c.unfiltered('llm_request_duration_seconds'), 's', [
        c.q(c.quantile('0.95', 'llm_request_duration_seconds', ['provider', 'model']), '{{provider}} {{model}}'),
      ], w=8),
      c.timeSeries('Latency p99 by model', 'Wall time of 99 % of calls, by provider and model: the tail LLMCriticalLatency alerts on.' + c.unfiltered('llm_request_duration_seconds'), 's', [
        c.q(c.quantile('0.99', 'llm_request_duration_seconds', ['provider', 'model']), '{{provider}} {{model}}'),
      ], w=8),
      c.timeSeries('Time per output token', 'Streams only: p50 and p95 decode time per output token after the first, by model.' + c.unfiltered('llm_time_per_output_token_seconds'), 's', [
        c.q(c.quantile(q, 'llm_time_per_output_token_seconds', ['model']), '%s {{model}}' % c.percentile(q))
        for q in ['0.5', '0.95']
      ], w=8),

      g.row.new('Quality'),
      c.timeSeries('Refusal rate by model', 'Share of calls whose response the opt-in refusal detector matched, by model. Needs configure(refusal_detector=True) in the app: without it the rate stays 0.', 'percentunit', [
        c.q(c.rareRatio(c.rate('llm_refusals_total'), c.rate('llm_requests_total'), ['model']), '{{model}}'),
      ], w=8),
      c.timeSeries('Response length vs one week ago', 'Mean output tokens per call (visible output plus reasoning) now and at the same time one week earlier. The "1 week ago" line stays empty until Prometheus holds data from a week before the time shown (a new install has none).' + c.unfiltered('llm_tokens_per_request'), 'short', [
        c.q(outputLength(''), 'now'),
        c.q(shifted(outputLength('')), '1 week ago'),
      ], w=8) + g.panel.timeSeries.withAxisLabel('tokens per call'),
      c.timeSeries('User feedback ratings', 'User ratings per second (positive, neutral, negative), recorded with record_feedback(); "none" at 0 while there are calls and no rating. The provider filter does not apply (ratings have no provider label).', 'reqps', [
        c.q(c.orNone('rating', c.rate('llm_feedback_total'), c.rate('llm_requests_total')), '{{rating}}'),
      ], w=8) + g.panel.timeSeries.withStacking('normal')
      + g.panel.withOverrides([
        { matcher: { id: 'byName', options: r[0] }, properties: [{ id: 'color', value: { mode: 'fixed', fixedColor: r[1] } }] }
        for r in [['positive', 'green'], ['neutral', 'yellow'], ['negative', 'red']]
      ]),
      c.stat('Positive feedback share', 'Positive ratings as a share of all ratings in the selected range (no value until a rating is recorded).', 'percentunit', [
        c.q(c.rareRatio(
          c.increaseRange('llm_feedback_total', 'rating="positive"'),
          c.increaseRange('llm_feedback_total'),
        ), 'positive') + g.query.prometheus.asInstant(),
      ], w=8, h=4) + g.panel.stat.withGraphMode('none')
      + g.panel.withThresholds([[null, 'red'], [0.6, 'orange'], [0.8, 'green']]),
      c.stat('Refusals in range', 'Responses the refusal detector matched in the selected range. Needs configure(refusal_detector=True) in the app: without it this stays 0.', 'short', [
        c.q(c.orZero(c.increaseRange('llm_refusals_total'), c.increaseRange('llm_requests_total')), 'refusals') + g.query.prometheus.asInstant(),
      ], w=8, h=4) + g.panel.stat.withGraphMode('none'),
      c.stat('Mean output tokens per call', 'Mean output tokens per call in the selected range (visible output plus reasoning).' + c.unfiltered('llm_tokens_per_request'), 'short', [
        c.q('sum(%s) / sum(%s)' % [
          c.increaseRange('llm_tokens_per_request', 'direction="output"', '_sum'),
          c.increaseRange('llm_tokens_per_request', 'direction="output"', '_count'),
        ], 'tokens') + g.query.prometheus.asInstant(),
      ], w=8, h=4) + g.panel.stat.withGraphMode('none'),
    ] + evaluationPanels,
  )
