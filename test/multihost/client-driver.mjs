// The client host of the multi-host test: runs inside the client network namespace
// (`ip netns exec <ns> node client-driver.mjs`) and makes the HTTP requests the test asks for.
// Protocol, one JSON object per line: in  { id, url, method?, headers?, body? }
//                                      out { id, status, headers, setCookie, body } or { id, error }
import { createInterface } from 'node:readline'

const out = (msg) => process.stdout.write(`${JSON.stringify(msg)}\n`)

createInterface({ input: process.stdin }).on('line', (line) => {
  let req
  try {
    req = JSON.parse(line)
  } catch {
    return out({ id: null, error: `not JSON: ${line.slice(0, 80)}` })
  }
  fetch(req.url, { method: req.method ?? 'GET', headers: req.headers ?? {}, body: req.body, redirect: 'manual', signal: AbortSignal.timeout(req.timeoutMs ?? 15_000) })
    .then(async (res) => {
      const body = await res.text()
      out({ id: req.id, status: res.status, headers: Object.fromEntries(res.headers), setCookie: res.headers.getSetCookie(), body })
    })
    .catch((err) => out({ id: req.id, error: String(err?.cause?.code ?? err?.name ?? err) }))
})
out({ id: 'ready' })
