/** A worker that lived at least this long ended a run of quick deaths. */
export const STABLE_AFTER_MS = 10_000
const FIRST_DELAY_MS = 100
const MAX_DELAY_MS = 30_000

/**
 * How long to wait before restarting a worker that died after `livedMs`, given how many of its
 * predecessors in that slot died quickly in a row: the first restart is nearly immediate, each
 * further quick death doubles the wait (a worker that crashes at startup does not spin a core),
 * and a worker that had been running steadily resets the count.
 */
export function restartDelay(livedMs: number, quickDeaths: number): { delayMs: number; quickDeaths: number } {
  const n = livedMs >= STABLE_AFTER_MS ? 0 : quickDeaths + 1
  return { delayMs: n === 0 ? FIRST_DELAY_MS : Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** n), quickDeaths: n }
}
