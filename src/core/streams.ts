import { pipeline, type Duplex, type Readable } from 'node:stream'

const ignore = () => {}

/**
 * Drops a body nobody will read. undici's response bodies emit an AbortError when destroyed
 * unread, which would be an uncaught exception without a listener; the error is expected here.
 */
export function discardBody(body: Readable): void {
  body.on('error', ignore)
  body.destroy()
}

/**
 * Reads a body nobody wants to its end, so its connection goes back to the pool (a 5xx served
 * around, a 304's empty body). It may still fail (a 304 that declared a Content-Length it never
 * sent): that failure is nobody's to answer, and must not be an 'error' event with no listener.
 */
export function drainBody(body: Readable): void {
  body.on('error', ignore)
  body.resume()
}

/**
 * `src` through `transform` (gunzip, gzip), answering the transform's readable side. Unlike
 * `.pipe()`, which forwards no errors, `stream.pipeline` owns the errors of both streams: an origin
 * that fails mid-body destroys the transform with its error, which whoever reads the returned
 * stream sees (fastify cuts the response, a `for await` throws), instead of an 'error' event
 * with no listener ending the process; a reader that stops early destroys the source in turn.
 */
export function through<T extends Duplex>(src: Readable, transform: T): T {
  // The callback's error is the one the returned stream is destroyed with: its reader handles it.
  pipeline(src, transform, ignore)
  return transform
}
