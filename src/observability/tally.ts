import {
  Counter,
  Histogram,
  type MetricObjectWithValues,
  type MetricValueWithName,
  type Registry,
} from "prom-client";

/** One series of a {@link TalliedCounter}: the hot path adds to `count`. */
export interface TallySeries {
  count: number;
}

interface Series<L extends string> extends TallySeries {
  readonly labels: Record<L, string>;
  flushed: number;
}

/**
 * A Prometheus counter whose series the hot path bumps as plain numbers (a
 * map lookup and an add); prom-client sees them only when it is scraped,
 * when each series adds what it counted since the previous scrape. A
 * prom-client child's `inc()` sorts and hashes its labels on every call,
 * about half a microsecond per Check (bench/NOTES.md, eighth round).
 */
export class TalliedCounter<L extends string> {
  /** Series by up to three key parts (nested maps: no key string is built per call). */
  readonly #series = new Map<string, Map<string, Map<string, Series<L>>>>();

  constructor(registry: Registry, name: string, help: string, labelNames: readonly L[]) {
    const series = this.#series;
    new Counter<L>({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        for (const byB of series.values()) {
          for (const byC of byB.values()) {
            for (const s of byC.values()) {
              const delta = s.count - s.flushed;
              s.flushed = s.count;
              if (delta > 0) this.inc(s.labels, delta);
            }
          }
        }
      },
    });
  }

  /**
   * The series the key parts `a`, `b`, `c` name (chosen by the caller, one
   * combination per label set), or undefined before {@link add} made it.
   */
  find(a: string, b: string, c: string): TallySeries | undefined {
    return this.#series.get(a)?.get(b)?.get(c);
  }

  /** Makes the series `a`, `b`, `c` with these labels (see {@link find}). */
  add(a: string, b: string, c: string, labels: Record<L, string>): TallySeries {
    let byB = this.#series.get(a);
    if (byB === undefined) {
      byB = new Map();
      this.#series.set(a, byB);
    }
    let byC = byB.get(b);
    if (byC === undefined) {
      byC = new Map();
      byB.set(b, byC);
    }
    const s = { labels, count: 0, flushed: 0 };
    byC.set(c, s);
    return s;
  }
}

/**
 * A Prometheus histogram with one label whose observations are counted in
 * plain arrays (a scan of the bounds and two adds) and exported at scrape
 * time in prom-client's own histogram format: cumulative `_bucket` series
 * with `le`, then `+Inf`, `_sum` and `_count`. It extends prom-client's
 * Histogram so that registries (and the Check workers' aggregation, which
 * sums by label set) treat it as one; prom-client's own `observe` is unused.
 */
export class TalliedHistogram<L extends string> extends Histogram<L> {
  readonly #name: string;
  readonly #help: string;
  readonly #bounds: readonly number[];
  readonly #label: L;
  // Not a #private field: prom-client's constructor calls reset() before
  // this class's fields exist.
  private readonly tallies = new Map<
    string,
    { buckets: Float64Array; sum: number; count: number }
  >();

  constructor(
    registry: Registry,
    options: { name: string; help: string; label: L; buckets: readonly number[] },
  ) {
    super({
      name: options.name,
      help: options.help,
      labelNames: [options.label],
      buckets: [...options.buckets],
      registers: [registry],
    });
    this.#name = options.name;
    this.#help = options.help;
    this.#bounds = [...options.buckets];
    this.#label = options.label;
  }

  /** Counts one observation of `value` under the label value `labelValue`. */
  record(labelValue: string, value: number): void {
    let tally = this.tallies.get(labelValue);
    if (tally === undefined) {
      tally = { buckets: new Float64Array(this.#bounds.length), sum: 0, count: 0 };
      this.tallies.set(labelValue, tally);
    }
    const bounds = this.#bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= (bounds[i] as number)) {
        (tally.buckets[i] as number) += 1;
        break;
      }
    }
    tally.sum += value;
    tally.count += 1;
  }

  override async get(): Promise<MetricObjectWithValues<MetricValueWithName<L>>> {
    return this.getForPromString();
  }

  /** What prom-client's registry formats (it prefers this method to `get`). */
  async getForPromString(): Promise<MetricObjectWithValues<MetricValueWithName<L>>> {
    const values: MetricValueWithName<string>[] = [];
    const bucket = `${this.#name}_bucket`;
    for (const [labelValue, tally] of this.tallies) {
      const labels = { [this.#label]: labelValue };
      let cumulative = 0;
      this.#bounds.forEach((bound, i) => {
        cumulative += tally.buckets[i] as number;
        values.push({ labels: { le: bound, ...labels }, value: cumulative, metricName: bucket });
      });
      values.push(
        { labels: { le: "+Inf", ...labels }, value: tally.count, metricName: bucket },
        { labels, value: tally.sum, metricName: `${this.#name}_sum` },
        { labels, value: tally.count, metricName: `${this.#name}_count` },
      );
    }
    // prom-client's typings declare `type` a numeric enum and require a
    // `collect`; at run time the registry reads the string and no collect.
    const metric = {
      name: this.#name,
      help: this.#help,
      type: "histogram",
      values,
      aggregator: "sum",
    };
    return metric as unknown as MetricObjectWithValues<MetricValueWithName<L>>;
  }

  override reset(): void {
    this.tallies?.clear();
  }
}
