/**
 * Authorises and validates a subscription exactly as REST would: by running
 * the route through its own lifecycle (hooks, params/querystring validation)
 * with the upgrade request's credentials, via `app.inject`.
 *
 * The injected request carries a one-time probe token. A preHandler that the
 * plugin appends to every realtime route — so it runs after all of the route's
 * own hooks — hands the request, as the route saw it, back to the waiting
 * subscription and answers 204 instead of running the handler: the view is
 * then read inside the model's queue, so it cannot race a write.
 */
import { randomBytes } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods, InjectOptions } from 'fastify'
import type { Knex } from 'knex'
import { EarlyRouteError, NoRouteError } from '../errors.js'
import type { QuerysetCheck } from '../registry/queryset-check.js'
import { lookupColumn, pkColumn, type RealtimeRoute, type RouteRegistry } from '../registry/route-registry.js'
import type { ExpiresAt, Row } from '../types.js'
import { jsonValue } from '../json.js'
import { expiryOf } from './expiry.js'
import { querysetViewKey, refetchViewKey } from './view.js'

export const PROBE_HEADER = 'x-rest-live-probe'

export type AuthorizedView =
  | { kind: 'queryset', route: RealtimeRoute, builder: Knex.QueryBuilder, serialize: (row: Row) => string, key: string, lookupValue: string | undefined, lookup?: LookupFilter }
  | { kind: 'refetch', route: RealtimeRoute, url: string, requester: Requester, key: string, lookupValue: string | undefined }

/** An authorised view, and until when the credentials that authorised it are good (see expiry.ts). */
export type Authorization = AuthorizedView & { expiresAt: number | undefined }

/**
 * A retrieve by a column other than the primary key (DRF's lookup_field): the
 * view finds its row by this filter once, then follows the row by primary key.
 */
export interface LookupFilter {
  column: string
  value: Knex.Value
}

export interface Credentials {
  [header: string]: string
}

/**
 * Who is asking, as the route would see them over HTTP: the upgrade request's
 * headers and the socket's peer address. Every request the plugin injects for a
 * socket (subscribe checks, re-checks, request frames, channels-api actions)
 * carries both, so `request.ip` (with the app's `trustProxy`), `request.host`,
 * `request.protocol` and any header a hook reads decide as they would over HTTP.
 */
export interface Requester {
  headers: Credentials
  /** The socket's peer address; undefined leaves light-my-request's 127.0.0.1 (sockets made by `injectWS`). */
  remoteAddress?: string | undefined
}

/**
 * Headers that describe the upgrade itself (or the transfer of a body), not the
 * client: never forwarded. `accept-encoding` too: an injected answer is read as
 * text, so a compressing route must not compress it. `x-rest-live-*` headers are
 * the plugin's own and only ever set by it.
 */
const HOP_HEADERS = new Set([
  'connection', 'upgrade', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'expect',
  'content-length', 'content-type', 'accept-encoding',
  'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions'
])

export function requesterOf (request: FastifyRequest): Requester {
  const headers: Credentials = {}
  for (const [name, value] of Object.entries(request.headers)) {
    if (HOP_HEADERS.has(name) || name.startsWith('x-rest-live-')) continue
    // Node gives arrays only for set-cookie, a response header: not something a route reads off a request
    if (typeof value === 'string') headers[name] = value
  }
  return { headers, remoteAddress: request.raw.socket?.remoteAddress }
}

interface Probe {
  resolve: (view: Authorization) => void
  reject: (err: unknown) => void
  /** Who the injected request stands for: a refetch view is keyed by all of it. */
  requester: Requester
}

export class SubscriptionAuthorizer {
  readonly #pending = new Map<string, Probe>()
  readonly #app: FastifyInstance
  readonly #registry: RouteRegistry
  readonly #querysets: QuerysetCheck
  readonly #expiresAt: ExpiresAt | undefined

  constructor (app: FastifyInstance, registry: RouteRegistry, querysets: QuerysetCheck, expiresAt?: ExpiresAt) {
    this.#app = app
    this.#registry = registry
    this.#querysets = querysets
    this.#expiresAt = expiresAt
  }

  /**
   * The preHandler appended to a realtime route. One per route: the probe is
   * captured with the exact route it reached (several routes may share a URL).
   */
  preHandlerFor (route: RealtimeRoute): (request: FastifyRequest, reply: FastifyReply) => Promise<void> {
    return async (request, reply) => {
      const probe = this.#probeOf(request)
      if (probe === undefined) return
      try {
        const view = this.#capture(route, request, reply, probe.requester)
        // asked of the request as the route's hooks left it (request.user set)
        probe.resolve({ ...view, expiresAt: await expiryOf(route.expiresAt ?? this.#expiresAt, request, route.url) })
      } catch (err) {
        probe.reject(err)
      }
      await reply.code(204).send()
    }
  }

  /** An onRequest hook for every route: a probe that reaches a non-realtime route stops there. */
  readonly onRequest = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const probe = this.#probeOf(request)
    const url = request.routeOptions.url
    if (probe === undefined || this.#registry.has(url ?? '')) return
    const error = url !== undefined && request.routeOptions.config.realtime !== undefined
      ? new NoRouteError(new EarlyRouteError(url).message)
      : new NoRouteError(`no realtime route matches ${request.url}`)
    probe.reject(error)
    // authorize() reads the answer, not the rejection: the message must travel in the body
    await reply.code(404).send({ statusCode: 404, error: 'Not Found', message: error.message })
  }

  /** Runs GET `url` as a subscription request; resolves with the view it may follow. */
  async authorize (url: string, requester: Requester): Promise<Authorization> {
    const token = randomBytes(18).toString('base64url')
    const captured = new Promise<Authorization>((resolve, reject) => {
      this.#pending.set(token, { resolve, reject, requester })
    })
    captured.catch(() => {}) // settled either way; the inject's answer decides what is thrown
    try {
      const response = await this.#app.inject(injectOptions('GET', url, requester, { [PROBE_HEADER]: token }))
      if (response.statusCode !== 204) {
        // the route's own hooks or validation answered: that is the subscription's answer
        const body = jsonValue(response.body) as { message?: unknown } | undefined
        const message = typeof body?.message === 'string' ? body.message : response.statusCode === 404 ? `no realtime route matches ${url}` : `GET ${url} answered ${response.statusCode}`
        throw Object.assign(new Error(message), { statusCode: response.statusCode })
      }
      return await captured
    } finally {
      this.#pending.delete(token)
    }
  }

  #probeOf (request: FastifyRequest): Probe | undefined {
    const token = request.headers[PROBE_HEADER]
    return typeof token === 'string' ? this.#pending.get(token) : undefined
  }

  #capture (route: RealtimeRoute, request: FastifyRequest, reply: FastifyReply, requester: Requester): AuthorizedView {
    const lookupValue = route.kind === 'retrieve' ? String((request.params as Record<string, unknown>)[route.lookup]) : undefined
    if (route.queryset === undefined) {
      // the view is whatever the route answers this request (its own bytes): same route, URL and requester
      return { kind: 'refetch', route, url: request.url, requester, key: refetchViewKey(route, request.url, requester), lookupValue }
    }
    let builder = this.#querysets.builder(route, route.queryset, request)
    let lookup: LookupFilter | undefined
    if (route.kind === 'retrieve') {
      const value = (request.params as Record<string, unknown>)[route.lookup] as Knex.Value
      if (route.lookup === route.pk) builder = builder.where(pkColumn(route), value)
      else lookup = { column: lookupColumn(route), value } // resolved to a pk in the model's queue (view.ts)
    }
    const { sql, bindings } = builder.toSQL()
    const view: AuthorizedView = { kind: 'queryset', route, builder, serialize: this.#registry.serializerOf(route, reply), key: querysetViewKey(route, sql, bindings, lookupValue), lookupValue }
    if (lookup !== undefined) view.lookup = lookup
    return view
  }
}

/** `app.inject` options for a request made on a socket's behalf. */
export function injectOptions (method: HTTPMethods, url: string, requester: Requester, extraHeaders: Credentials = {}, payload?: string): InjectOptions {
  const options: InjectOptions = { method, url, headers: { ...requester.headers, ...extraHeaders } }
  if (requester.remoteAddress !== undefined) options.remoteAddress = requester.remoteAddress
  if (payload !== undefined) {
    options.payload = payload
    ;(options.headers as Credentials)['content-type'] = 'application/json'
  }
  return options
}
