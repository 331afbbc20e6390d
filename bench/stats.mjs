// Small statistics helpers for the bench.

/** Sorts latencies (µs) in place and returns them. */
export function sortLatencies(values) {
  const sorted = Float64Array.from(values);
  sorted.sort();
  return sorted;
}

/** Nearest-rank percentile (q in 0..1) of an ascending array; NaN when empty. */
export function percentile(sorted, q) {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1];
}

/** p50 / p99 / p99.9 / max of a latency sample, in µs. */
export function latencySummary(values) {
  const sorted = sortLatencies(values);
  return {
    count: sorted.length,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    p999: percentile(sorted, 0.999),
    max: sorted.length ? sorted[sorted.length - 1] : Number.NaN,
  };
}

export function median(values) {
  const sorted = [...values].filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}
