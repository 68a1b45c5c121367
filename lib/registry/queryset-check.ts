/**
 * Runs a route's queryset and checks what it returned, because the queryset is
 * a function of the request: nothing about it can be known before the first
 * request (calling it at startup with a stand-in request would run user code
 * that reads `request.user` and the like on an object that is not a request).
 * So the first request (REST or subscribe) that reaches a wrong queryset fails
 * with a message naming the route and the fix, logged once per route, instead
 * of `internal error` or a subscription that silently never hears a write.
 */
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { Knex } from 'knex'
import type { TableNames } from '../capture/table-names.js'
import { QuerysetModelError, QuerysetResultError } from '../errors.js'
import { isQueryBuilder, partsOf } from '../knex/internals.js'
import type { RealtimeRoute } from './route-registry.js'

function describeResult (value: unknown): string {
  if (value === undefined) return 'undefined (did it forget to return?)'
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array (rows already fetched: return the builder, do not await it)'
  if (typeof (value as { toSQL?: unknown }).toSQL === 'function') return 'a raw query (db.raw has no table to follow)'
  if (typeof (value as { then?: unknown }).then === 'function') return 'a promise (the queryset must not be async nor await the query)'
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`
}

export class QuerysetCheck {
  readonly #names: TableNames
  readonly #log: FastifyBaseLogger
  /** Route ids whose mistake was logged: once is enough to find it. */
  readonly #reported = new Set<number>()

  constructor (names: TableNames, log: FastifyBaseLogger) {
    this.#names = names
    this.#log = log
  }

  /**
   * The table a queryset that takes no request reads (`() => db('tasks')`): it
   * is called once at registration, which is safe (building a query runs
   * nothing) and checks it there; undefined for one that takes the request,
   * which only a request can call, one that throws now, or one that reads a subquery.
   */
  readonly tableOf = (url: string, queryset: NonNullable<RealtimeRoute['queryset']>): string | undefined => {
    if (queryset.length > 0) return undefined
    let value: unknown
    try {
      value = (queryset as () => unknown)()
    } catch {
      // it may need something only ready later (a connection set up in onReady): a request will tell
      return undefined
    }
    if (!isQueryBuilder(value)) throw new QuerysetResultError(url, describeResult(value))
    return this.#names.ofBuilder(partsOf(value).single)
  }

  /** The route's queryset for this request, checked; throws (and logs once) when it cannot be followed. */
  builder (route: RealtimeRoute, queryset: NonNullable<RealtimeRoute['queryset']>, request: FastifyRequest): Knex.QueryBuilder {
    const value: unknown = queryset(request)
    if (!isQueryBuilder(value)) this.#fail(route, new QuerysetResultError(route.url, describeResult(value)))
    const table = this.#names.ofBuilder(partsOf(value).single)
    // a subquery or a function as table: nothing to compare (the model is then the user's word)
    if (table !== undefined && table !== this.#names.ofString(route.model)) {
      this.#fail(route, new QuerysetModelError(route.url, route.model, table, table))
    }
    return value
  }

  #fail (route: RealtimeRoute, err: Error): never {
    if (!this.#reported.has(route.id)) {
      this.#reported.add(route.id)
      this.#log.error({ err }, err.message)
    }
    throw err
  }
}
