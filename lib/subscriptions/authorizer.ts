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
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Knex } from 'knex'
import { EarlyRouteError, NoRouteError } from '../errors.js'
import { rowSerializer } from '../registry/response-schema.js'
import { pkColumn, type RealtimeRoute, type RouteRegistry } from '../registry/route-registry.js'
import type { Row } from '../types.js'
import { safeJson } from './json-text.js'
import { querysetViewKey, refetchViewKey, type RequestIdentity } from './view.js'

export const PROBE_HEADER = 'x-rest-live-probe'

export type AuthorizedView =
  | { kind: 'queryset', route: RealtimeRoute, builder: Knex.QueryBuilder, serialize: (row: Row) => string, key: string, lookupValue: string | undefined }
  | { kind: 'refetch', route: RealtimeRoute, url: string, identity: RequestIdentity, key: string, lookupValue: string | undefined }

export interface Credentials {
  [header: string]: string
}

/** Upgrade-request headers that carry credentials, forwarded to every injected request. */
export const CREDENTIAL_HEADERS = ['authorization', 'cookie'] as const

export function credentialsOf (request: FastifyRequest): Credentials {
  const credentials: Credentials = {}
  for (const name of CREDENTIAL_HEADERS) {
    const value = request.headers[name]
    if (typeof value === 'string') credentials[name] = value
  }
  return credentials
}

interface Probe {
  resolve: (view: AuthorizedView) => void
  reject: (err: unknown) => void
  /** What the injected request carries besides the probe token: a refetch view is keyed by all of it. */
  identity: RequestIdentity
}

export class SubscriptionAuthorizer {
  readonly #pending = new Map<string, Probe>()
  readonly #app: FastifyInstance
  readonly #registry: RouteRegistry

  constructor (app: FastifyInstance, registry: RouteRegistry) {
    this.#app = app
    this.#registry = registry
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
        probe.resolve(this.#capture(route, request, reply, probe.identity))
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
  async authorize (url: string, credentials: Credentials): Promise<AuthorizedView> {
    const token = randomBytes(18).toString('base64url')
    const captured = new Promise<AuthorizedView>((resolve, reject) => {
      this.#pending.set(token, { resolve, reject, identity: { headers: credentials } })
    })
    captured.catch(() => {}) // settled either way; the inject's answer decides what is thrown
    try {
      const response = await this.#app.inject({ method: 'GET', url, headers: { ...credentials, [PROBE_HEADER]: token } })
      if (response.statusCode !== 204) {
        // the route's own hooks or validation answered: that is the subscription's answer
        const body = safeJson(response.body) as { message?: unknown } | undefined
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

  #capture (route: RealtimeRoute, request: FastifyRequest, reply: FastifyReply, identity: RequestIdentity): AuthorizedView {
    const lookupValue = route.kind === 'retrieve' ? String((request.params as Record<string, unknown>)[route.lookup]) : undefined
    if (route.queryset === undefined) {
      // the view is whatever the route answers this request (its own bytes): same route, URL and identity
      return { kind: 'refetch', route, url: request.url, identity, key: refetchViewKey(route, request.url, identity), lookupValue }
    }
    let builder = route.queryset(request)
    if (route.kind === 'retrieve') {
      builder = builder.where(pkColumn(route), (request.params as Record<string, unknown>)[route.lookup] as Knex.Value)
    }
    const { sql, bindings } = builder.toSQL()
    // taken once per route, from the route's own compiled response serializers
    route.serialize ??= rowSerializer(route.kind, route.response, reply)
    return { kind: 'queryset', route, builder, serialize: route.serialize, key: querysetViewKey(route, sql, bindings, lookupValue), lookupValue }
  }
}
