// Selectors, thresholds and windows shared by rules, alerts and dashboards.
{
  _config+:: {
    // Selects the app(s) exporting llm_* metrics; goes between {} in queries.
    llmSelector: 'job="llm-app"',
    // Labels that recording rules keep (the exporter's common labels).
    llmAggregationLabels: 'provider, model, feature',
    // Metric names, label sets and buckets, generated from llm_exporter.contract.
    contract: import 'lib/contract.json',
  },
}
