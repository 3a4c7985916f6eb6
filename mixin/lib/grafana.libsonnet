// A small Grafana dashboard library modelled on grafonnet's API
// (g.dashboard.new(...) + g.dashboard.withX(...), g.panel.timeSeries.new(...),
// g.query.prometheus.new(...), g.util.grid.makeGrid(...)). grafonnet cannot be
// fetched here, and we need only a few panel types. Output is the classic
// dashboard JSON model (schemaVersion 41), validated in tests against a JSON
// Schema generated from @grafana/schema (grafana/schema/).
local datasourceRef = { type: 'prometheus', uid: '${datasource}' };
local get(o, k, default) = if std.objectHas(o, k) then o[k] else default;

local panelBase(type, title) = {
  type: type,
  title: title,
  datasource: datasourceRef,
  targets: [],
  fieldConfig: { defaults: {}, overrides: [] },
  options: {},
};

// Mixins shared by every panel type (grafonnet: panelOptions, queryOptions,
// standardOptions).
local panelMixins = {
  withDescription(description): { description: description },
  withTargets(targets): { targets: targets },
  withUnit(unit): { fieldConfig+: { defaults+: { unit: unit } } },
  withDecimals(n): { fieldConfig+: { defaults+: { decimals: n } } },
  withMin(v): { fieldConfig+: { defaults+: { min: v } } },
  withMax(v): { fieldConfig+: { defaults+: { max: v } } },
  withNoValue(text): { fieldConfig+: { defaults+: { noValue: text } } },
  // steps: [[null, 'green'], [0.05, 'red']]
  withThresholds(steps): { fieldConfig+: { defaults+: { thresholds: {
    mode: 'absolute',
    steps: [{ value: s[0], color: s[1] } for s in steps],
  } } } },
  withColorMode(mode): { fieldConfig+: { defaults+: { color: { mode: mode } } } },
  withOverrides(overrides): { fieldConfig+: { overrides+: overrides } },
  withTransformations(list): { transformations: list },
  // Relative time override, e.g. 'now/d' = today so far.
  withTimeFrom(from): { timeFrom: from, hideTimeOverride: false },
  withGridPos(w, h): { gridPos: { w: w, h: h } },
  withOptions(options): { options+: options },
  withCustom(custom): { fieldConfig+: { defaults+: { custom+: custom } } },
};

local legend(placement='bottom', calcs=[]) = {
  showLegend: true,
  displayMode: if calcs == [] then 'list' else 'table',
  placement: placement,
  calcs: calcs,
};

{
  datasourceRef:: datasourceRef,

  dashboard: {
    new(title, uid): {
      title: title,
      uid: uid,
      schemaVersion: 41,
      editable: false,
      graphTooltip: 1,  // shared crosshair
      timezone: 'browser',
      time: { from: 'now-6h', to: 'now' },
      refresh: '1m',
      tags: [],
      links: [],
      panels: [],
      templating: { list: [] },
      annotations: { list: [] },
      fiscalYearStartMonth: 0,
      liveNow: false,
      weekStart: '',
    },
    withDescription(d): { description: d },
    withTags(tags): { tags: tags },
    withTime(from, to='now'): { time: { from: from, to: to } },
    withRefresh(r): { refresh: r },
    withVariables(vars): { templating: { list: vars } },
    withAnnotations(list): { annotations: { list: list } },
    withLinks(links): { links: links },
    // Panels are laid out and numbered by util.grid.makeGrid.
    withPanels(panels, panelWidth=8, panelHeight=8): {
      panels: $.util.grid.makeGrid(panels, panelWidth, panelHeight),
    },
    link: {
      // Links to the other dashboards with these tags, keeping time and variables.
      dashboards(title, tags): {
        title: title,
        type: 'dashboards',
        tags: tags,
        asDropdown: true,
        includeVars: true,
        keepTime: true,
        targetBlank: false,
        icon: 'external link',
        tooltip: '',
        url: '',
      },
    },
  },

  row: {
    new(title): { type: 'row', title: title, collapsed: false, panels: [] },
  },

  panel: panelMixins {
    timeSeries: {
      new(title): panelBase('timeseries', title) {
        options: { legend: legend(), tooltip: { mode: 'multi', sort: 'desc' } },
        fieldConfig+: { defaults+: { custom: {
          drawStyle: 'line',
          lineWidth: 1,
          fillOpacity: 10,
          showPoints: 'never',
          spanNulls: false,
          stacking: { mode: 'none', group: 'A' },
        } } },
      },
      withStacking(mode='normal'): { fieldConfig+: { defaults+: { custom+: { stacking: { mode: mode, group: 'A' } } } } },
      withDrawStyle(style): { fieldConfig+: { defaults+: { custom+: { drawStyle: style, fillOpacity: if style == 'bars' then 80 else 10 } } } },
      withLegend(placement='bottom', calcs=[]): { options+: { legend: legend(placement, calcs) } },
      withAxisLabel(label): { fieldConfig+: { defaults+: { custom+: { axisLabel: label } } } },
    },
    stat: {
      new(title): panelBase('stat', title) {
        options: {
          reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
          colorMode: 'value',
          graphMode: 'area',
          justifyMode: 'auto',
          orientation: 'auto',
          textMode: 'auto',
        },
      },
      withReducer(calc): { options+: { reduceOptions+: { calcs: [calc] } } },
      withGraphMode(mode): { options+: { graphMode: mode } },
    },
    table: {
      new(title): panelBase('table', title) {
        options: { showHeader: true, cellHeight: 'sm', footer: { show: false, reducer: ['sum'], fields: '' } },
      },
      withSortBy(column, desc=true): { options+: { sortBy: [{ displayName: column, desc: desc }] } },
    },
    heatmap: {
      // Prometheus histogram buckets, rendered as a heatmap of bucket rates.
      new(title): panelBase('heatmap', title) {
        options: {
          calculate: false,
          cellGap: 1,
          color: { mode: 'scheme', scheme: 'Oranges', steps: 64, exponent: 0.5, fill: 'dark-orange', reverse: false, scale: 'exponential' },
          yAxis: { axisPlacement: 'left', reverse: false },
          rowsFrame: { layout: 'auto' },
          tooltip: { mode: 'single', yHistogram: true, showColorScale: false },
          legend: { show: true },
          filterValues: { le: 1e-9 },
          exemplars: { color: 'rgba(255,0,255,0.7)' },
        },
      },
      withYUnit(unit): { options+: { yAxis+: { unit: unit } } },
    },
    barGauge: {
      new(title): panelBase('bargauge', title) {
        options: {
          reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
          orientation: 'horizontal',
          displayMode: 'gradient',
          showUnfilled: true,
          valueMode: 'color',
          namePlacement: 'auto',
          sizing: 'auto',
          minVizHeight: 16,
          minVizWidth: 8,
          maxVizHeight: 300,
        },
      },
    },
  },

  query: {
    prometheus: {
      // refIds are assigned by util.withRefIds when a panel's targets are set.
      new(expr): {
        datasource: datasourceRef,
        expr: expr,
        refId: 'A',
        range: true,
        instant: false,
        editorMode: 'code',
        legendFormat: '__auto',
      },
      withLegendFormat(f): { legendFormat: f },
      // Instant table query (one row per series).
      asTable(): { format: 'table', instant: true, range: false },
      asInstant(): { instant: true, range: false },
      asHeatmap(): { format: 'heatmap', legendFormat: '{{le}}' },
      withInterval(i): { interval: i },
    },
  },

  variable: {
    // A datasource picker; every panel and target points at ${<name>}.
    datasource(name='datasource', pluginId='prometheus', label='Data source'): {
      name: name,
      label: label,
      type: 'datasource',
      query: pluginId,
      // Defaults to the provisioned datasource (grafana/provisioning/datasources).
      current: { selected: true, text: 'Prometheus', value: pluginId },
      hide: 0,
      includeAll: false,
      multi: false,
      options: [],
      refresh: 1,
      regex: '',
      skipUrlSync: false,
    },
    // label_values(selector, label) on ${datasource}, multi with All = '.*'.
    labelValues(name, label, metric, selector, title=null): {
      name: name,
      label: if title == null then std.asciiUpper(name[0]) + name[1:] else title,
      type: 'query',
      datasource: datasourceRef,
      query: {
        qryType: 1,
        query: 'label_values(%s{%s}, %s)' % [metric, selector, label],
        refId: 'PrometheusVariableQueryEditor-VariableQuery',
      },
      current: { selected: true, text: ['All'], value: ['$__all'] },
      includeAll: true,
      allValue: '.*',
      multi: true,
      options: [],
      refresh: 2,  // on time range change
      regex: '',
      sort: 1,
      hide: 0,
      skipUrlSync: false,
    },
  },

  annotation: {
    // Grafana's own annotations and alerts (kept so users can still annotate).
    builtIn(): {
      builtIn: 1,
      datasource: { type: 'grafana', uid: '-- Grafana --' },
      enable: true,
      hide: true,
      iconColor: 'rgba(0, 211, 255, 1)',
      name: 'Annotations & Alerts',
      type: 'dashboard',
      target: { limit: 100, matchAny: false, tags: [], type: 'dashboard' },
    },
    // A Prometheus query annotation: one region per series while it is present.
    prometheus(name, expr, titleFormat, textFormat='', tagKeys='', color='red'): {
      name: name,
      datasource: datasourceRef,
      enable: true,
      hide: false,
      iconColor: color,
      expr: expr,
      step: '30s',
      titleFormat: titleFormat,
      textFormat: textFormat,
      tagKeys: tagKeys,
      useValueForTime: false,
    },
  },

  util: {
    // Give each target a distinct refId (A, B, ...).
    withRefIds(targets): [
      targets[i] { refId: std.char(std.codepoint('A') + i) }
      for i in std.range(0, std.length(targets) - 1)
    ],
    grid: {
      // Flow panels left to right in a 24-column grid; a row starts a new line
      // and spans the width. A panel's own gridPos.w/h wins over the defaults.
      // Assigns ids 1..n in order (grafonnet: util.grid.makeGrid + setPanelIDs).
      makeGrid(panels, panelWidth=8, panelHeight=8)::
        local step(state, p) =
          local isRow = p.type == 'row';
          local w = if isRow then 24 else get(get(p, 'gridPos', {}), 'w', panelWidth);
          local h = if isRow then 1 else get(get(p, 'gridPos', {}), 'h', panelHeight);
          local wrap = isRow || state.x + w > 24;
          local x = if wrap then 0 else state.x;
          local y = if wrap then state.y + state.lineH else state.y;
          local placed = p {
            id: std.length(state.out) + 1,
            gridPos: { x: x, y: y, w: w, h: h },
          } + (if isRow then {} else { targets: $.util.withRefIds(p.targets) });
          {
            out: state.out + [placed],
            x: if isRow then 0 else x + w,
            y: if isRow then y + 1 else y,
            lineH: if isRow then 0 else (if wrap then h else std.max(state.lineH, h)),
          };
        std.foldl(step, panels, { out: [], x: 0, y: 0, lineH: 0 }).out,
    },
  },
}
