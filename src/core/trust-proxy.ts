import ipaddr from 'ipaddr.js'

/**
 * `trustProxy`: the peers (IP addresses and CIDR ranges) whose Forwarded and X-Forwarded-* fields
 * strata keeps and appends to, as nginx's `set_real_ip_from` does. Compiled once; the per-request
 * check is a Set lookup for exact addresses and a one-entry cache of the last decision (a proxy
 * behind a load balancer sees the same few peers over and over).
 */
export interface TrustProxy {
  /** Whether a connection from `peer` (the socket's remote address) may speak for the client. */
  trusts(peer: string | undefined): boolean
}

/** The problem with one `trustProxy` entry, or undefined when it is an address or a CIDR range. */
export function trustEntryProblem(entry: string): string | undefined {
  if (ipaddr.isValid(entry)) return undefined
  if (entry.includes('/') && ipaddr.isValidCIDR(entry)) return undefined
  return 'must be an IP address or a CIDR range (e.g. "10.0.0.0/8")'
}

/** Compiles the list (entries already validated by the config loader). */
export function compileTrustProxy(entries: readonly string[]): TrustProxy {
  if (entries.length === 0) return NO_TRUST
  const exact = new Set<string>()
  const ranges: [ipaddr.IPv4 | ipaddr.IPv6, number][] = []
  for (const e of entries) {
    if (e.includes('/')) {
      const [addr, bits] = ipaddr.parseCIDR(e)
      // An IPv4-mapped IPv6 range is matched as the IPv4 range it maps.
      ranges.push(addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96 ? [(addr as ipaddr.IPv6).toIPv4Address(), bits - 96] : [addr, bits])
    } else exact.add(ipaddr.process(e).toString())
  }
  let lastPeer: string | undefined
  let lastAnswer = false
  const decide = (peer: string): boolean => {
    if (exact.has(peer)) return true
    let addr: ipaddr.IPv4 | ipaddr.IPv6
    try {
      // process(): "::ffff:10.1.2.3" (how a dual-stack socket reports IPv4 peers) becomes 10.1.2.3.
      addr = ipaddr.process(peer)
    } catch {
      return false
    }
    if (exact.has(addr.toString())) return true
    for (const [range, bits] of ranges) if (addr.kind() === range.kind() && addr.match(range, bits)) return true
    return false
  }
  return {
    trusts(peer) {
      if (peer === undefined) return false
      if (peer === lastPeer) return lastAnswer
      lastAnswer = decide(peer)
      lastPeer = peer
      return lastAnswer
    },
  }
}

const NO_TRUST: TrustProxy = { trusts: () => false }
