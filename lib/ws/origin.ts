/**
 * Cross-site WebSocket hijacking guard. Browsers send cookies with a WebSocket
 * upgrade from any page, so a socket that would be authenticated by cookie is
 * only accepted from the page's own origin or an allowed one. Sockets without
 * cookies, or from non-browser clients (no Origin header), are not affected.
 */
import type { FastifyRequest } from 'fastify'

/** Why the upgrade is refused, or undefined to accept it. */
export function checkOrigin (request: FastifyRequest, allowedOrigins: string[] | undefined): string | undefined {
  const origin = request.headers.origin
  if (origin === undefined || request.headers.cookie === undefined) return undefined
  if (allowedOrigins?.includes(origin) === true) return undefined
  let originHost: string
  try {
    originHost = new URL(origin).host
  } catch {
    return `origin ${JSON.stringify(origin)} is not a valid origin`
  }
  // the page's own origin is always allowed; allowedOrigins adds to it
  if (originHost === request.headers.host) return undefined
  return `origin ${origin} may not open a cookie-authenticated socket (add it to the allowedOrigins option)`
}
