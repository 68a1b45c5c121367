/**
 * `app.realtime`: the handler helpers (list / retrieve run the route's queryset,
 * so handlers don't repeat it), publish for writes made outside Knex, and stats.
 */
import { Type } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import type { Knex } from 'knex'
import type { Bus } from './bus/bus.js'
import { EarlyRouteError, InstanceNotFoundError, InvalidPublishError, MissingQuerysetError, NotRealtimeRouteError, QueryFailedError } from './errors.js'
import type { QuerysetCheck } from './registry/queryset-check.js'
import { lookupColumn, type RealtimeRoute, type RouteRegistry } from './registry/route-registry.js'
import { usableKey } from './registry/unkeyed-rows.js'
import type { Counters } from './stats.js'
import type { RealtimeDecorator, RealtimeStats, Row } from './types.js'
import { FieldsCheck } from './validation.js'

export interface DecoratorDeps {
  registry: RouteRegistry
  querysets: QuerysetCheck
  counters: Counters
  bus: () => Bus
  connections: () => number
  subscriptions: () => number
  settled: () => Promise<void>
  /** Declares a channels-api resource (lib/channels). */
  resource: RealtimeDecorator['resource']
  /** Re-runs subscriptions' checks (subscriptions/revocation.ts). */
  reauthorize: RealtimeDecorator['reauthorize']
}

// publish()'s arguments, checked as an object keyed by parameter name so that a failure names the argument
const publishCheck = new FieldsCheck('publish() argument', {
  model: { schema: Type.String({ minLength: 1 }), must: "must be a table name like 'tasks'" },
  op: { schema: Type.Union([Type.Literal('insert'), Type.Literal('update'), Type.Literal('delete')]), must: "must be 'insert', 'update' or 'delete'" },
  rows: { schema: Type.Array(Type.Unknown()), must: (model) => `must be an array of the rows of '${model}' that changed, each with its primary key` }
})

export function createRealtimeDecorator (deps: DecoratorDeps): RealtimeDecorator {
  function routeOf (request: FastifyRequest, helper: string): RealtimeRoute & { queryset: NonNullable<RealtimeRoute['queryset']> } {
    const route = deps.registry.byUrl(request.routeOptions.url)
    if (route === undefined) {
      // the route asked to be realtime, but Fastify showed it to no plugin registered after it (a route
      // with config has a URL: only the not-found handler has none, and it has no config.realtime)
      if (request.routeOptions.config.realtime !== undefined) throw new EarlyRouteError(request.routeOptions.url as string)
      throw new NotRealtimeRouteError(helper, `${request.method} ${request.routeOptions.url ?? request.url}`)
    }
    if (route.queryset === undefined) throw new MissingQuerysetError(helper, route.url)
    return route as RealtimeRoute & { queryset: NonNullable<RealtimeRoute['queryset']> }
  }

  /**
   * Runs a query for a REST answer. Fastify's default error handler sends a 500's
   * message, and a driver's message holds the SQL (and sometimes values): the
   * client gets a clean error, the log the original.
   */
  async function run<T> (request: FastifyRequest, route: RealtimeRoute, query: Knex.QueryBuilder): Promise<T> {
    try {
      return await query as T
    } catch (err) {
      request.log.error({ err }, `fastify-rest-live: the query of GET ${route.url} failed`)
      throw new QueryFailedError(route.url)
    }
  }

  return {
    async list (request) {
      const route = routeOf(request, 'list')
      return await run<Row[]>(request, route, deps.querysets.builder(route, route.queryset, request))
    },

    async retrieve (request) {
      const route = routeOf(request, 'retrieve')
      const value = (request.params as Record<string, unknown>)[route.lookup]
      // DRF's lookup_field: the lookup names the column searched (the primary key unless configured)
      const query = deps.querysets.builder(route, route.queryset, request).where(lookupColumn(route), value as Knex.Value).first()
      const row = await run<Row | undefined>(request, route, query)
      if (row === undefined) throw new InstanceNotFoundError(route.model, route.lookup, String(value))
      return row
    },

    async publish (model, op, rows) {
      const problem = publishCheck.problem({ model, op, rows }, String(model))
      if (problem !== undefined) throw new InvalidPublishError(`${problem.field} ${problem.detail}`)
      const pk = deps.registry.pkOf(model) ?? 'id'
      // a NULL key would make every such row one row to subscribers (registry/unkeyed-rows.ts)
      const missing = rows.findIndex((row) => row === null || typeof row !== 'object' || !usableKey((row as Row)[pk]))
      if (missing !== -1) throw new InvalidPublishError(`rows[${missing}] has no primary key '${pk}'`)
      if (rows.length === 0) return
      await deps.bus().publish({ model, op, rows })
    },

    settled: deps.settled,

    resource: deps.resource,

    reauthorize: deps.reauthorize,

    stats (): RealtimeStats {
      return {
        connections: deps.connections(),
        subscriptions: deps.subscriptions(),
        ...deps.counters
      }
    }
  }
}
