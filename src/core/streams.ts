import type { Readable } from 'node:stream'

const ignore = () => {}

/**
 * Drops a body nobody will read. undici's response bodies emit an AbortError when destroyed
 * unread, which would be an uncaught exception without a listener; the error is expected here.
 */
export function discardBody(body: Readable): void {
  body.on('error', ignore)
  body.destroy()
}
