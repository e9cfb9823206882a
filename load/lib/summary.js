// handleSummary: the summary JSON to <RESULTS_DIR>/<profile>.json and a text summary to stdout.
// (k6 prints no text summary of its own once a script defines handleSummary.)

const RESULTS_DIR = (__ENV.RESULTS_DIR || 'load/results').replace(/\/+$/, '');

function number(value, digits = 2) {
  return Number.isInteger(value) ? String(value) : value.toFixed(digits);
}

function trendText(values, stats, unit) {
  return stats
    .map((stat) => `${stat}=${number(values[stat])}${stat === 'count' ? '' : unit}`)
    .join(' ');
}

function metricText(metric, name, stats) {
  const v = metric.values;
  switch (metric.type) {
    case 'trend':
      return trendText(v, stats, metric.contains === 'time' ? 'ms' : '');
    case 'rate':
      return `${number(v.rate * 100)}% (${v.passes} of ${v.passes + v.fails})`;
    case 'counter':
      return `${number(v.count)} (${number(v.rate)}/s)`;
    case 'gauge':
      return `${number(v.value)} (min ${number(v.min)}, max ${number(v.max)})`;
    default:
      throw new Error(`metric ${name} has unknown type ${metric.type}`);
  }
}

function thresholdLines(metrics) {
  return Object.entries(metrics).flatMap(([name, metric]) =>
    Object.entries(metric.thresholds || {}).map(
      ([rule, result]) => `  ${result.ok ? 'PASS' : 'FAIL'}  ${name}: ${rule}`,
    ),
  );
}

function checkLines(group) {
  const own = group.checks.map(
    (c) => `  ${c.fails ? 'FAIL' : 'PASS'}  ${c.name}: ${c.passes}/${c.passes + c.fails}`,
  );
  return own.concat(...group.groups.map(checkLines));
}

function textSummary(data, profile) {
  const seconds = number(data.state.testRunDurationMs / 1000, 1);
  const stats = data.options.summaryTrendStats;
  const metricLines = Object.keys(data.metrics)
    .sort()
    .map((name) => `  ${name.padEnd(40, '.')} ${metricText(data.metrics[name], name, stats)}`);
  return [
    `\n=== k6 ${profile} (${seconds} s) ===`,
    'thresholds:', ...thresholdLines(data.metrics),
    'checks:', ...checkLines(data.root_group),
    'metrics:', ...metricLines,
    '',
  ].join('\n');
}

export function handleSummaryFor(name, meta = {}) {
  return function handleSummary(data) {
    const profile = Object.assign({ name }, meta);
    return {
      [`${RESULTS_DIR}/${name}.json`]: JSON.stringify(Object.assign({ profile }, data), null, 2),
      stdout: textSummary(data, name),
    };
  };
}
