// LLM cost: where the money goes, what it will be, and what is not counted.
local g = import '../lib/grafana.libsonnet';

function(c, cfg)
  local cost = c.rate('llm_cost_usd_total');
  local topk = cfg.dashboardTopK;
  // Input-side token types (uncached input, cache reads, cache writes).
  local inputTypes = 'token_type=~"input|cache_read|cache_write"';
  c.dashboard(
    'LLM cost',
    c.uids.cost,
    'Estimated LLM spend from token counts and the price table: by feature, model and provider, per request and per token, projections, cache effect and unpriced calls.',
    [
      g.row.new('Spend'),
      c.stat('Spend in range', 'Estimated USD spent over the selected time range.', 'currencyUSD', [
        c.q('sum(%s)' % c.increaseRange('llm_cost_usd_total'), 'USD') + g.query.prometheus.asInstant(),
      ]) + g.panel.stat.withGraphMode('none'),
      c.stat('Projected daily spend', 'Mean spend rate over the selected range, times 24 h.', 'currencyUSD', [
        c.q('sum(%s) * 86400' % cost, 'USD/day'),
      ]) + g.panel.stat.withReducer('mean'),
      c.stat('Projected monthly spend', 'Mean spend rate over the selected range, times 30 days.', 'currencyUSD', [
        c.q('sum(%s) * 86400 * 30' % cost, 'USD/month'),
      ]) + g.panel.stat.withReducer('mean'),
      c.stat('Cost per request', 'Mean estimated USD per finished call.', 'currencyUSD', [
        c.q('sum(%s) / sum(%s)' % [cost, c.rate('llm_requests_total')], 'USD/request'),
      ]) + g.panel.withDecimals(5),
      c.stat('Cost per 1k tokens', 'Mean estimated USD per 1000 billed tokens (all token types).', 'currencyUSD', [
        c.q('sum(%s) / sum(%s) * 1000' % [cost, c.rate('llm_tokens_total')], 'USD/1k tokens'),
      ]) + g.panel.withDecimals(5),
      c.stat('Unpriced calls / s', 'Calls whose model has no price in the price table: their cost is not counted. Add the model to the price table. 0 while every called model has a price.', 'reqps', [
        c.q(c.orZero(c.rate('llm_unpriced_requests_total'), c.rate('llm_requests_total')), 'unpriced'),
      ]) + g.panel.withThresholds([[null, 'green'], [1e-9, 'orange']]),

      g.row.new('Spend by dimension'),
      c.timeSeries('Spend by feature', 'Top %d features by estimated USD per hour.' % topk, 'currencyUSD', [
        c.q('topk(%d, sum by (feature) (%s)) * 3600' % [topk, cost], '{{feature}}'),
      ], w=8) + g.panel.timeSeries.withStacking('normal'),
      c.timeSeries('Spend by model', 'Top %d models by estimated USD per hour.' % topk, 'currencyUSD', [
        c.q('topk(%d, sum by (model) (%s)) * 3600' % [topk, cost], '{{model}}'),
      ], w=8) + g.panel.timeSeries.withStacking('normal'),
      c.timeSeries('Spend by provider', 'Estimated USD per hour by provider.', 'currencyUSD', [
        c.q('sum by (provider) (%s) * 3600' % cost, '{{provider}}'),
      ], w=8) + g.panel.timeSeries.withStacking('normal'),
      c.table('Spend by feature and model', 'Estimated USD over the selected range per provider, model and feature, most expensive first.', 'currencyUSD', [
        c.q('sort_desc(sum by (provider, model, feature) (%s))' % c.increaseRange('llm_cost_usd_total'))
        + g.query.prometheus.asTable(),
      ], w=24) + g.panel.table.withSortBy('Value')
      + g.panel.withTransformations([{ id: 'organize', options: {
        excludeByName: { Time: true },
        renameByName: { Value: 'USD' },
        indexByName: { provider: 0, model: 1, feature: 2, Value: 3 },
      } }]),

      g.row.new('Unit cost'),
      c.timeSeries('Cost per request by model', 'Mean estimated USD per finished call, by model.', 'currencyUSD', [
        c.q('sum by (model) (%s) / sum by (model) (%s)' % [cost, c.rate('llm_requests_total')], '{{model}}'),
      ]),
      c.timeSeries('Cost per 1k tokens by model', 'Mean estimated USD per 1000 billed tokens, by model.', 'currencyUSD', [
        c.q('sum by (model) (%s) / sum by (model) (%s) * 1000' % [cost, c.rate('llm_tokens_total')], '{{model}}'),
      ]),

      g.row.new('Tokens and cache'),
      c.timeSeries('Tokens by type', 'Billed tokens per second by disjoint type: input (uncached), cache_read, cache_write, output, reasoning.', 'short', [
        c.q('sum by (token_type) (%s)' % c.rate('llm_tokens_total'), '{{token_type}}'),
      ], w=8) + g.panel.timeSeries.withStacking('normal') + g.panel.timeSeries.withAxisLabel('tokens/s'),
      c.timeSeries('Cache hit ratio', 'Share of input-side tokens read from the provider prompt cache, by model.', 'percentunit', [
        c.q(c.rareRatio(c.rate('llm_tokens_total', 'token_type="cache_read"'), c.rate('llm_tokens_total', inputTypes), ['model']), '{{model}}'),
      ], w=8) + g.panel.withMax(1),
      c.timeSeries('Saved by cache reads', 'Estimated USD per hour not spent because input tokens were read from the prompt cache.', 'currencyUSD', [
        c.q('sum by (model) (%s) * 3600' % c.rate('llm_cache_savings_usd_total'), '{{model}}'),
      ], w=8),
      c.table('Unpriced models', 'Calls in the selected range whose model has no price (their cost is missing from every panel), per model called: add the models above 0 to the price table. The feature filter narrows the models listed, not their counts (the unpriced counter has no feature label).', 'short', [
        c.q('sort_desc(%s)' % c.orZero(c.increaseRange('llm_unpriced_requests_total'), c.increaseRange('llm_requests_total'), ['provider', 'model']))
        + g.query.prometheus.asTable(),
      ], w=24, h=6) + g.panel.withTransformations([{ id: 'organize', options: {
        excludeByName: { Time: true },
        renameByName: { Value: 'calls' },
      } }]),
    ],
  )
