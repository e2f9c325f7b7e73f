/**
 * Prometheus metrics, as clip-back exposes them: the latency of every request by route, and of
 * every step of a query (download of an image_url, embed, search, metadata), so `/metrics`
 * shows where a slow query spends its time. `/metrics-summary` is clip-back's plain-text view:
 * the average of each step and its share of a `/knn-service` request.
 */
import { collectDefaultMetrics, Histogram, Registry } from "prom-client";

export const QUERY_STEPS = ["download", "embed", "search", "metadata"] as const;
export type QueryStep = (typeof QUERY_STEPS)[number];

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly requests: Histogram<"route" | "method" | "status">;
  private readonly steps: Histogram<"step" | "index">;
  private readonly shards: Histogram<"index" | "shard" | "outcome">;

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "clipcrawl_" });
    this.requests = new Histogram({
      name: "clipcrawl_http_request_duration_seconds",
      help: "Time to answer a request, by route",
      labelNames: ["route", "method", "status"],
      buckets: BUCKETS,
      registers: [this.registry],
    });
    this.steps = new Histogram({
      name: "clipcrawl_query_step_duration_seconds",
      help: "Time spent in one step of a query: download (image_url), embed, search, metadata",
      labelNames: ["step", "index"],
      buckets: BUCKETS,
      registers: [this.registry],
    });
    this.shards = new Histogram({
      name: "clipcrawl_shard_duration_seconds",
      help: "Time one shard took to answer its part of a query (local, or a remote serve's URL), by outcome: ok, error, timeout",
      labelNames: ["index", "shard", "outcome"],
      buckets: BUCKETS,
      registers: [this.registry],
    });
  }

  /** One shard's part of a fanned-out query: "local" or the remote serve's URL. */
  observeShard(index: string, shard: string, outcome: string, seconds: number): void {
    this.shards.observe({ index, shard, outcome }, seconds);
  }

  observeRequest(route: string, method: string, status: number, seconds: number): void {
    this.requests.observe({ route, method, status: String(status) }, seconds);
  }

  /** Runs `work` and records its duration under `step`, whether it succeeds or throws. */
  async time<T>(step: QueryStep, index: string, work: () => T | Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await work();
    } finally {
      this.steps.observe({ step, index }, (performance.now() - started) / 1000);
    }
  }

  /** The same, for synchronous work on the hot path (no promise). */
  timeSync<T>(step: QueryStep, index: string, work: () => T): T {
    const started = performance.now();
    try {
      return work();
    } finally {
      this.steps.observe({ step, index }, (performance.now() - started) / 1000);
    }
  }

  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** clip-back's /metrics-summary: average seconds per step and its share of a knn request. */
  async summary(): Promise<string> {
    const requests = (await this.requests.get()).values;
    const knn = sumAndCount(
      requests.filter((value) => value.labels.route === "/knn-service"),
      "clipcrawl_http_request_duration_seconds",
    );
    if (knn.count === 0) return "No request yet, go do some\n";
    const average = knn.sum / knn.count;
    const stepValues = (await this.steps.get()).values;
    const lines = [
      `Among ${knn.count} calls to the knn end point with an average latency of ${average.toFixed(4)}s per request, the step costs are (in order):`,
      "",
    ];
    const rows = QUERY_STEPS.map((step) => {
      const { sum, count } = sumAndCount(
        stepValues.filter((value) => value.labels.step === step),
        "clipcrawl_query_step_duration_seconds",
      );
      const stepAverage = count === 0 ? 0 : sum / count;
      return { step, count, stepAverage };
    }).sort((a, b) => b.stepAverage - a.stepAverage);
    for (const { step, count, stepAverage } of rows) {
      const share = ((stepAverage / average) * 100).toFixed(1);
      lines.push(
        `${step.padEnd(10)} ${String(count).padStart(8)} calls  ${stepAverage.toFixed(4)}s  ${share}%`,
      );
    }
    return `${lines.join("\n")}\n`;
  }
}

function sumAndCount(
  values: readonly { metricName?: string; value: number }[],
  name: string,
): { sum: number; count: number } {
  let sum = 0;
  let count = 0;
  for (const value of values) {
    if (value.metricName === `${name}_sum`) sum += value.value;
    if (value.metricName === `${name}_count`) count += value.value;
  }
  return { sum, count };
}
