import type { StrataConfig } from '../config/schema.js'
import type { AdminAnswer, AdminCall } from '../admin/cluster-aggregate.js'

export type { AdminAnswer, AdminCall }

/**
 * The messages between the primary and its workers (`"workers": N`), over node:cluster's IPC
 * channel. Every strata message carries `strata: <kind>`; anything else on the channel (Node's own
 * cluster messages are not delivered here, but a library such as prom-client may send its own) is
 * not ours and is ignored. Each side validates what it receives (the channel crosses a process
 * boundary: a message from an older build or a confused worker is refused, never trusted).
 */

export type WorkerCall = { op: 'admin'; request: AdminCall } | { op: 'metrics' }

export type PrimaryMessage =
  /** Build the app from `config`, replay `journal` (admin changes made before this worker started), listen. */
  /** `stickySecret` (base64url): the sticky-cookie secret when the config sets none, one for every worker. */
  | { strata: 'start'; config: StrataConfig; journal: AdminCall[]; configFile?: string; stickySecret: string }
  | { strata: 'call'; id: number; call: WorkerCall }
  /** Graceful shutdown: stop accepting, finish in-flight requests, exit 0. */
  | { strata: 'shutdown' }

export type WorkerMessage =
  /** The worker listens for messages now (one sent before that would be lost): send `start`. */
  | { strata: 'hello' }
  | { strata: 'ready'; proxy: { host: string; port: number; url: string } }
  | { strata: 'failed'; message: string }
  | { strata: 'reply'; id: number; answer: AdminAnswer }
  | { strata: 'reply'; id: number; metrics: unknown[] }
  | { strata: 'reply'; id: number; error: string }

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)
const isStr = (v: unknown): v is string => typeof v === 'string'
const isId = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0

function isAdminCall(v: unknown): v is AdminCall {
  return (
    isObj(v) &&
    isStr(v['method']) &&
    /^[A-Z]{3,7}$/.test(v['method']) &&
    isStr(v['url']) &&
    v['url'].startsWith('/') &&
    (v['authorization'] === undefined || isStr(v['authorization']))
  )
}

/** A message from the primary, or undefined when it is not a valid strata message. */
export function parsePrimaryMessage(m: unknown): PrimaryMessage | undefined {
  if (!isObj(m)) return undefined
  switch (m['strata']) {
    case 'start':
      return isObj(m['config']) && Array.isArray(m['journal']) && m['journal'].every(isAdminCall) && (m['configFile'] === undefined || isStr(m['configFile'])) && isStr(m['stickySecret']) ? (m as PrimaryMessage) : undefined
    case 'call': {
      const call = m['call']
      if (!isId(m['id']) || !isObj(call)) return undefined
      if (call['op'] === 'metrics') return m as PrimaryMessage
      return call['op'] === 'admin' && isAdminCall(call['request']) ? (m as PrimaryMessage) : undefined
    }
    case 'shutdown':
      return m as PrimaryMessage
    default:
      return undefined
  }
}

/** A message from a worker, or undefined when it is not a valid strata message. */
export function parseWorkerMessage(m: unknown): WorkerMessage | undefined {
  if (!isObj(m)) return undefined
  switch (m['strata']) {
    case 'hello':
      return m as WorkerMessage
    case 'ready': {
      const p = m['proxy']
      return isObj(p) && isStr(p['host']) && isId(p['port']) && isStr(p['url']) ? (m as WorkerMessage) : undefined
    }
    case 'failed':
      return isStr(m['message']) ? (m as WorkerMessage) : undefined
    case 'reply': {
      if (!isId(m['id'])) return undefined
      const a = m['answer']
      if (isObj(a)) return Number.isInteger(a['status']) && isStr(a['contentType']) && isStr(a['body']) ? (m as WorkerMessage) : undefined
      if (Array.isArray(m['metrics'])) return m as WorkerMessage
      return isStr(m['error']) ? (m as WorkerMessage) : undefined
    }
    default:
      return undefined
  }
}
