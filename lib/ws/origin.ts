/**
 * Cross-site WebSocket hijacking guard. Browsers send cookies (and always an
 * `Origin`) with a WebSocket upgrade from any page, so:
 * - without `allowedOrigins`, an upgrade that carries a cookie is accepted only
 *   from the page's own host (non-browser clients send no `Origin`);
 * - with `allowedOrigins`, every upgrade that carries an `Origin` must come
 *   from one of them, or from the server's own origin, compared as origins:
 *   scheme, host and port exactly (`https://app.example` is not
 *   `http://app.example`, and `https://app.example:443` is `https://app.example`).
 */
import type { FastifyRequest } from 'fastify'

/** The origin (`scheme://host[:port]`, default port dropped) of a URL-like string, or undefined when it is not one. */
export function originOf (value: string): string | undefined {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return undefined
  }
  // an origin has nothing after the port; 'null' (sandboxed frames, file:) and opaque origins are not origins
  if (url.origin === 'null' || url.username !== '' || url.password !== '' || url.pathname.length > 1 || url.search !== '' || url.hash !== '') return undefined
  return url.origin
}

/** Why the upgrade is refused, or undefined to accept it. */
export function checkOrigin (request: FastifyRequest, allowedOrigins: ReadonlySet<string> | undefined): string | undefined {
  const origin = request.headers.origin
  if (origin === undefined) return undefined // not a browser: nothing to hijack
  if (allowedOrigins === undefined && request.headers.cookie === undefined) return undefined
  const normalized = originOf(origin)
  if (normalized === undefined) return `origin ${JSON.stringify(origin)} is not a valid origin`
  if (allowedOrigins === undefined) {
    // the page's own host is always allowed (the scheme is not known reliably behind a TLS proxy)
    if (new URL(normalized).host === request.headers.host) return undefined
    return `origin ${origin} may not open a cookie-authenticated socket (add it to the allowedOrigins option)`
  }
  // `protocol` is undefined without a socket (sockets made by `injectWS`)
  const own = `${request.protocol ?? 'http'}://${request.host}`
  if (allowedOrigins.has(normalized) || normalized === originOf(own)) return undefined
  return `origin ${origin} is not in allowedOrigins (scheme, host and port must match an entry exactly)`
}
