/**
 * fastify-rest-live: a live twin of an application's REST routes over one WebSocket.
 *
 *   write ─► capture (after commit) ─► bus ─► manager (re-check views) ─► connection ─► client
 *
 * This module only wires the pieces together and ties them to Fastify's lifecycle.
 */
import websocket from '@fastify/websocket'
import type { FastifyPluginAsync, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import type { Bus, BusListener } from './bus/bus.js'
import { MemoryBus } from './bus/memory-bus.js'
import { createRedisBus } from './bus/redis-bus.js'
import { RegistrationTarget } from './capture/capture-target.js'
import { KnexCapture } from './capture/knex-capture.js'
import { ChannelsProtocol } from './channels/adapter.js'
import { Seal } from './channels/permissions.js'
import { EarlyRouteError } from './errors.js'
import { registerInspector } from './inspector/inspector.js'
import { TableSchemas } from './matcher/schema.js'
import { resolveOptions } from './options.js'
import { createRealtimeDecorator } from './realtime-decorator.js'
import { QuerysetCheck } from './registry/queryset-check.js'
import { RouteRegistry } from './registry/route-registry.js'
import { UnkeyedRows } from './registry/unkeyed-rows.js'
import { createCounters } from './stats.js'
import { SubscriptionAuthorizer, injectOptions, requesterOf, type AuthorizedView } from './subscriptions/authorizer.js'
import { SubscriptionManager } from './subscriptions/manager.js'
import { Revoker } from './subscriptions/revocation.js'
import { viewOf, type RouteFetcher, type ViewReads, type ViewSource } from './subscriptions/view.js'
import type { RestLiveOptions } from './types.js'
import { Connection, type ConnectionContext, type Protocols } from './ws/connection.js'
import { NativeProtocol } from './ws/native.js'
import { ProtocolTable } from './ws/protocol.js'
import { checkOrigin } from './ws/origin.js'

export type { RealtimeRouteConfig, RestLiveOptions, RealtimeDecorator, RealtimeStats, Row, WriteOp } from './types.js'
export type { ExpiresAt, RealtimeSubscriptionInfo, ReauthorizeSummary } from './types.js'
export * as errors from './errors.js'
export type { RedisClusterOption, ResourceOptions } from './types.js'
export { actionOf, allowAny, isAuthenticated, isUser, permission, pkOf, streamOf } from './channels/permissions.js'
export type { PermissionCheck, PermissionHook, PermissionOptions, UserOf } from './channels/permissions.js'

const restLive: FastifyPluginAsync<RestLiveOptions> = async (app, rawOptions) => {
  const options = resolveOptions(rawOptions)
  // one capture per Knex instance, shared with any other registration on it (knex-capture.ts)
  const capture = KnexCapture.of(options.knex)
  const querysets = new QuerysetCheck(capture.names, app.log)
  const registry = new RouteRegistry((model) => capture.names.ofString(model), querysets.tableOf)
  const counters = createCounters()
  const unkeyed = new UnkeyedRows(app.log, registry, capture.names.dialect)
  const manager = new SubscriptionManager(registry, app.log, counters, capture.clock, unkeyed)
  const authorizer = new SubscriptionAuthorizer(app, registry, querysets, options.expiresAt)
  const connections = new Set<Connection>()
  const countQuery = (): void => { counters.databaseChecks++ }
  const fetchRoute: RouteFetcher = async (url, requester) => {
    const response = await app.inject(injectOptions('GET', url, requester))
    return { statusCode: response.statusCode, body: response.body }
  }
  const reads: ViewReads = { countQuery, clock: manager.clock, schemas: new TableSchemas() }
  /** The one way an authorised subscription becomes a view: sockets, channels-api and re-checks alike. */
  const view = (authorized: AuthorizedView): ViewSource => viewOf(authorized, reads, fetchRoute)
  const revoker = new Revoker({
    authorizer,
    manager,
    log: app.log,
    view,
    every: options.reauthorizeEvery
  })
  manager.watch(revoker)

  app.addHook('onRoute', function (route) {
    // `this` is the instance the route is registered on: its shared schemas are the ones the route's $refs see
    const realtime = registry.add(route, this)
    if (realtime === undefined) return
    // appended last, so the route's own hooks have authorised the probe before it is answered
    const existing = route.preHandler === undefined ? [] : Array.isArray(route.preHandler) ? route.preHandler : [route.preHandler]
    route.preHandler = [...existing, authorizer.preHandlerFor(realtime)] as RouteOptions['preHandler']
  })
  const reportedEarly = new Set<string>()
  app.addHook('onRequest', async (request, reply) => {
    const url = request.routeOptions.url
    if (url !== undefined && request.routeOptions.config.realtime !== undefined && !registry.has(url) && !reportedEarly.has(url)) {
      // Fastify shows a plugin no routes registered before it, so this is the first moment we can know
      reportedEarly.add(url)
      app.log.error(new EarlyRouteError(url).message)
    }
    await authorizer.onRequest(request, reply)
  })

  const listener: BusListener = {
    event: (event) => { manager.onEvent(event) },
    gap: (models) => { manager.onGap(models) }
  }
  const bus: Bus = options.redis === undefined
    ? new MemoryBus(listener)
    : await createRedisBus({ redis: options.redis, channelPrefix: options.channelPrefix, listener, log: app.log, pkOf: (model) => registry.pkOf(model) })
  manager.attach(bus)

  const target = new RegistrationTarget({
    capture,
    registry,
    unkeyed,
    log: app.log,
    maxCapturedRows: options.maxCapturedRows,
    publish: (event) => {
      bus.publish(event).catch((err: unknown) => { app.log.error({ err, model: event.model }, 'fastify-rest-live: publishing a change failed') })
    }
  })
  const detach = capture.attach(target)
  // registered as soon as there is something to release, so a later registration failure leaks nothing
  app.addHook('onClose', async () => {
    revoker.close()
    detach()
    await bus.close()
  })

  // added before @fastify/websocket's own preClose, which closes every socket without a code (1005)
  app.addHook('preClose', async () => {
    for (const connection of connections) connection.close(1001, 'server shutting down')
  })
  // An upgrade answered by a hook that ran before @fastify/websocket's own onRequest (an auth hook
  // registered before this plugin refusing with 401) is never released by @fastify/websocket, which
  // only destroys sockets it saw: each refusal would keep a descriptor, and app.close() would wait on
  // it forever. `raw.upgrade` marks requests that came through the server's 'upgrade' event.
  app.addHook('onResponse', async (request) => {
    const upgrade = (request.raw as { upgrade?: boolean }).upgrade === true // set by Node's parser, untyped
    if (upgrade && request.ws !== true) request.raw.socket.destroy()
  })
  if (!app.hasDecorator('websocketServer')) {
    // a hard ceiling above maxPayload: frames between the two get a 413 answer, larger ones a 1009 close
    await app.register(websocket, { options: { maxPayload: options.maxPayload * 4 } })
  }

  const ctx: ConnectionContext = {
    app,
    log: app.log,
    options,
    registry,
    manager,
    authorizer,
    revoker,
    view
  }
  // channels-api frames ({ stream, payload }) share the socket, its writer and its subscriptions
  const seal = new Seal()
  seal.install(app)
  const channels = new ChannelsProtocol(ctx, seal)
  const native = new NativeProtocol(ctx)
  const protocols: Protocols = { table: new ProtocolTable([channels], native), native }

  app.get(options.path, {
    websocket: true,
    onRequest: async (request, reply) => {
      const refusal = checkOrigin(request, options.allowedOrigins)
      if (refusal !== undefined) await reply.code(403).send({ statusCode: 403, error: 'Forbidden', message: refusal })
    }
  }, (socket, request) => {
    const connection = new Connection(socket, requesterOf(request), ctx, protocols)
    connections.add(connection)
    socket.on('close', () => { connections.delete(connection) })
  })

  const realtime = createRealtimeDecorator({
    registry,
    querysets,
    counters,
    bus: () => bus,
    connections: () => connections.size,
    subscriptions: () => manager.subscriptionCount,
    // re-checks first: a moved subscription's resync is a queued job the manager then waits for
    settled: async () => { await revoker.idle(); await manager.idle() },
    reauthorize: async (match) => await revoker.reauthorize(match),
    resource: (stream, resourceOptions) => { channels.resources.declare(stream, resourceOptions) }
  })
  app.decorate('realtime', realtime)
  if (options.inspector) registerInspector(app, options.path, { stats: () => realtime.stats(), routes: () => manager.describe(), declared: () => registry.models().flatMap((model) => registry.forModel(model)) })

  app.addHook('onReady', async () => {
    // every route and shared schema is known now: refuse routes whose frames could not match REST
    registry.checkResponses()
    // and read the foreign keys that reach their tables
    await target.ready(options.knex)
  })
}

export default fp(restLive, { name: 'fastify-rest-live', fastify: '5.x' })
export { restLive }
