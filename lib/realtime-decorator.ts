/**
 * `app.realtime`: the handler helpers (list / retrieve run the route's queryset,
 * so handlers don't repeat it), publish for writes made outside Knex, and stats.
 */
import type { FastifyRequest } from 'fastify'
import type { Knex } from 'knex'
import type { Bus } from './bus/bus.js'
import { InstanceNotFoundError, InvalidPublishError, MissingQuerysetError, NotRealtimeRouteError } from './errors.js'
import { pkColumn, type RealtimeRoute, type RouteRegistry } from './registry/route-registry.js'
import { usableKey } from './registry/unkeyed-rows.js'
import type { Counters } from './stats.js'
import type { RealtimeDecorator, RealtimeStats, Row, WriteOp } from './types.js'

export interface DecoratorDeps {
  registry: RouteRegistry
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

const ops = new Set<WriteOp>(['insert', 'update', 'delete'])

export function createRealtimeDecorator (deps: DecoratorDeps): RealtimeDecorator {
  function routeOf (request: FastifyRequest, helper: string): RealtimeRoute & { queryset: NonNullable<RealtimeRoute['queryset']> } {
    const route = deps.registry.byUrl(request.routeOptions.url)
    if (route === undefined) throw new NotRealtimeRouteError(helper, `${request.method} ${request.routeOptions.url ?? request.url}`)
    if (route.queryset === undefined) throw new MissingQuerysetError(helper, route.url)
    return route as RealtimeRoute & { queryset: NonNullable<RealtimeRoute['queryset']> }
  }

  return {
    async list (request) {
      const route = routeOf(request, 'list')
      return await route.queryset(request) as Row[]
    },

    async retrieve (request) {
      const route = routeOf(request, 'retrieve')
      const value = (request.params as Record<string, unknown>)[route.lookup]
      const row = await route.queryset(request).where(pkColumn(route), value as Knex.Value).first() as Row | undefined
      if (row === undefined) throw new InstanceNotFoundError(route.model, route.lookup, String(value))
      return row
    },

    async publish (model, op, rows) {
      if (typeof model !== 'string' || model === '') throw new InvalidPublishError('model must be a table name')
      if (!ops.has(op)) throw new InvalidPublishError(`op must be 'insert', 'update' or 'delete', got ${JSON.stringify(op)}`)
      if (!Array.isArray(rows)) throw new InvalidPublishError('rows must be an array of rows, each with its primary key')
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
