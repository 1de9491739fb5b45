import { AggregatorRegistry, type Registry } from 'prom-client'

/**
 * /metrics with `"workers": N`: each worker hands its registry as JSON to the primary, which merges
 * them with prom-client's AggregatorRegistry (counters and histograms summed). A gauge describes
 * one process (its L1 bytes, its in-flight requests, its memory), so each worker's gauges carry a
 * `pid` label and stay one series per worker instead of being summed into a number no process has.
 */
export async function workerMetricsJson(registry: Registry, pid: number): Promise<unknown[]> {
  const metrics = await registry.getMetricsAsJSON()
  for (const m of metrics) {
    // The JSON's type is prom-client's string ('gauge'), despite the enum in its typings.
    if (String(m.type) !== 'gauge') continue
    for (const v of m.values) v.labels = { ...v.labels, pid }
  }
  return metrics
}

/** The Prometheus text of every worker's metrics merged (plus the primary's own, if given). */
export async function aggregateMetricsText(perWorker: ReadonlyArray<unknown[]>): Promise<{ contentType: string; body: string }> {
  const merged = AggregatorRegistry.aggregate(perWorker as Array<object>)
  return { contentType: merged.contentType, body: await merged.metrics() }
}
