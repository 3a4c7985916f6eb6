// LLM overview: traffic, errors, latency, tokens, spend and rate limits.
local g = import '../lib/grafana.libsonnet';

function(c) c.dashboard(
  'LLM overview',
  c.uids.overview,
  'Health of LLM API calls: traffic, errors, latency, tokens, spend, finish reasons and provider rate limits.',
  [
    g.row.new('Summary'),
    c.stat('Request rate', 'Finished LLM calls per second (all outcomes).', 'reqps', [
      c.q('sum(%s)' % c.rate('llm_requests_total'), 'requests/s'),
    ]),
    c.stat('Error ratio', 'Failed calls as a share of finished calls (0 while calls succeed). Red above 5 %.', 'percentunit', [
      c.q(c.rareRatio(c.rate('llm_errors_total'), c.rate('llm_requests_total')), 'errors'),
    ]) + g.panel.withThresholds([[null, 'green'], [0.01, 'orange'], [0.05, 'red']]),
    c.stat('p95 latency', 'Wall time of 95 % of calls (streams: until the stream ends).' + c.unfiltered('llm_request_duration_seconds'), 's', [
      c.q(c.quantile('0.95', 'llm_request_duration_seconds'), 'p95'),
    ]) + g.panel.withThresholds([[null, 'green'], [5, 'orange'], [10, 'red']]),
    c.stat('Spend per hour', 'Estimated USD per hour at the current rate, from token counts and the price table.', 'currencyUSD', [
      c.q('sum(%s) * 3600' % c.rate('llm_cost_usd_total'), 'USD/h'),
    ]),
    c.stat('Spend today', 'Estimated USD spent since midnight (dashboard time zone).', 'currencyUSD', [
      c.q('sum(%s)' % c.increaseRange('llm_cost_usd_total'), 'USD') + g.query.prometheus.asInstant(),
    ]) + g.panel.withTimeFrom('now/d') + g.panel.stat.withGraphMode('none'),
    c.stat('Priced-call coverage', 'Share of calls whose model has a price in the price table; unpriced calls add no cost. The feature filter does not apply (the unpriced counter has provider and model only).', 'percentunit', [
      c.q('1 - %s' % c.rareRatio(c.rate('llm_unpriced_requests_total'), c.rate('llm_requests_total')), 'priced'),
    ]) + g.panel.withThresholds([[null, 'red'], [0.95, 'orange'], [0.999, 'green']]) + g.panel.withMax(1),

    g.row.new('Traffic and errors'),
    c.timeSeries('Request rate by model', 'Finished calls per second by provider and model.', 'reqps', [
      c.q('sum by (provider, model) (%s)' % c.rate('llm_requests_total'), '{{provider}} {{model}}'),
    ], w=8),
    c.timeSeries('Error ratio by model', 'Failed calls / finished calls, by model (0 while calls succeed).', 'percentunit', [
      c.q(c.rareRatio(c.rate('llm_errors_total'), c.rate('llm_requests_total'), ['model']), '{{model}}'),
    ], w=8),
    c.timeSeries('Error rate by error type', 'Failed calls per second by normalised error type (rate_limit, timeout, server_error, ...); "none" at 0 while calls succeed.', 'reqps', [
      c.q(c.orNone('error_type', c.rate('llm_errors_total'), c.rate('llm_requests_total')), '{{error_type}}'),
    ], w=8) + g.panel.timeSeries.withStacking('normal'),

    g.row.new('Latency'),
    c.timeSeries('Latency percentiles by operation', 'p50, p95 and p99 wall time per API operation (chat, responses, messages, embeddings, ...).' + c.unfiltered('llm_request_duration_seconds'), 's', [
      c.q(c.quantile(q, 'llm_request_duration_seconds', ['operation']), '%s {{operation}}' % c.percentile(q))
      for q in ['0.5', '0.95', '0.99']
    ]),
    c.timeSeries('Time to first token', 'Streams only: p50 and p95 time until the first content, tool or reasoning delta, by model.' + c.unfiltered('llm_time_to_first_token_seconds'), 's', [
      c.q(c.quantile(q, 'llm_time_to_first_token_seconds', ['model']), '%s {{model}}' % c.percentile(q))
      for q in ['0.5', '0.95']
    ]),

    g.row.new('Tokens and spend'),
    c.timeSeries('Output tokens / s', 'Generated tokens per second (visible output plus reasoning) by model.', 'short', [
      c.q('sum by (model) (%s)' % c.rate('llm_tokens_total', 'token_type=~"output|reasoning"'), '{{model}}'),
    ], w=8) + g.panel.timeSeries.withAxisLabel('tokens/s'),
    c.timeSeries('Spend per hour by model', 'Estimated USD per hour at the current rate, by provider and model.', 'currencyUSD', [
      c.q('sum by (provider, model) (%s) * 3600' % c.rate('llm_cost_usd_total'), '{{provider}} {{model}}'),
    ], w=8) + g.panel.timeSeries.withStacking('normal'),
    c.timeSeries('Retries', 'Attempts after the first (SDK-internal or caller retries) per second, by model.', 'reqps', [
      c.q(c.orZero(c.rate('llm_retries_total'), c.rate('llm_requests_total'), ['model']), '{{model}}'),
    ], w=8),

    g.row.new('Outcomes'),
    c.timeSeries('Finish reasons', 'Finished calls per second by normalised finish reason.', 'reqps', [
      c.q('sum by (finish_reason) (%s)' % c.rate('llm_requests_total'), '{{finish_reason}}'),
    ], w=8) + g.panel.timeSeries.withStacking('normal'),
    c.timeSeries('Truncation rate by model', 'Share of calls that stopped at the output token limit (finish_reason="length"). Alert threshold: 5 %.', 'percentunit', [
      c.q(c.rareRatio(c.rate('llm_requests_total', 'finish_reason="length"'), c.rate('llm_requests_total'), ['model']), '{{model}}'),
    ], w=8),
    c.timeSeries('Content-filter rate by model', 'Share of calls stopped by the provider content filter (finish_reason="content_filter").', 'percentunit', [
      c.q(c.rareRatio(c.rate('llm_requests_total', 'finish_reason="content_filter"'), c.rate('llm_requests_total'), ['model']), '{{model}}'),
    ], w=8),

    g.row.new('Capacity'),
    c.timeSeries('In-flight calls', 'LLM calls started and not yet finished, by model.', 'short', [
      c.q('sum by (model) (%s)' % c.m('llm_in_flight_requests'), '{{model}}'),
    ]),
    c.barGauge('Rate-limit headroom', 'Remaining share of each provider rate-limit window from the latest response headers. Red below 10 %.', 'percentunit', [
      c.q('min by (provider, model, resource) (%s / %s)' % [c.m('llm_ratelimit_remaining'), c.m('llm_ratelimit_limit')], '{{provider}} {{model}} {{resource}}')
      + g.query.prometheus.asInstant(),
    ]) + g.panel.withMin(0) + g.panel.withMax(1)
    + g.panel.withThresholds([[null, 'red'], [0.1, 'orange'], [0.25, 'green']]),
  ],
)
