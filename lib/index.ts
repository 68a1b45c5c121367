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
import type { Bus, BusListener, ChangeEvent } from './bus/bus.js'
import { MemoryBus } from './bus/memory-bus.js'
import { createRedisBus } from './bus/redis-bus.js'
import { KnexCapture } from './capture/knex-capture.js'
import { markCaptured, type CommitWindow } from './capture/local-sequence.js'
import { ChannelsAdapter } from './channels/adapter.js'
import { EarlyRouteError } from './errors.js'
import { registerInspector } from './inspector/inspector.js'
import { resolveOptions } from './options.js'
import { createRealtimeDecorator } from './realtime-decorator.js'
import { RouteRegistry } from './registry/route-registry.js'
import { createCounters } from './stats.js'
import { SubscriptionAuthorizer, injectOptions, requesterOf, safeJson } from './subscriptions/authorizer.js'
import { SubscriptionManager } from './subscriptions/manager.js'
import type { RestLiveOptions } from './types.js'
import { Connection, type ConnectionContext } from './ws/connection.js'
import { checkOrigin } from './ws/origin.js'

export type { RealtimeRouteConfig, RestLiveOptions, RealtimeDecorator, RealtimeStats, Row, WriteOp } from './types.js'
export * as errors from './errors.js'
export type { ResourceOptions } from './types.js'
export { actionOf, allowAny, isAuthenticated, isUser, permission, pkOf, streamOf } from './channels/permissions.js'
export type { PermissionCheck, PermissionHook, PermissionOptions, UserOf } from './channels/permissions.js'

const restLive: FastifyPluginAsync<RestLiveOptions> = async (app, rawOptions) => {
  const options = resolveOptions(rawOptions)
  const registry = new RouteRegistry()
  const counters = createCounters()
  const manager = new SubscriptionManager(registry, app.log, counters)
  const authorizer = new SubscriptionAuthorizer(app, registry)
  const connections = new Set<Connection>()

  app.addHook('onRoute', (route) => {
    if (registry.add(route) === undefined) return
    // appended last, so the route's own hooks have authorised the probe before it is answered
    const existing = route.preHandler === undefined ? [] : Array.isArray(route.preHandler) ? route.preHandler : [route.preHandler]
    route.preHandler = [...existing, authorizer.preHandler] as RouteOptions['preHandler']
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
    : await createRedisBus({ redis: options.redis, channelPrefix: options.channelPrefix, listener, log: app.log })
  manager.attach(bus)

  const publishCommitted = (events: ChangeEvent[], window: CommitWindow): void => {
    for (const event of coalesce(events)) {
      markCaptured(event, window)
      bus.publish(event).catch((err: unknown) => { app.log.error({ err, model: event.model }, 'fastify-rest-live: publishing a change failed') })
    }
  }
  const capture = new KnexCapture({ knex: options.knex, trackedPk: (table) => registry.pkOf(table), publish: publishCommitted })
  capture.install()
  // registered as soon as there is something to release, so a later registration failure leaks nothing
  app.addHook('onClose', async () => {
    capture.uninstall()
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
  app.addHook('onResponse', async (request, reply) => {
    const upgrade = (request.raw as { upgrade?: boolean }).upgrade === true // set by Node's parser, untyped
    if (upgrade && request.ws !== true) (reply.raw.socket ?? request.raw.socket).destroy()
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
    countQuery: () => { counters.databaseChecks++ },
    fetchRoute: async (url, requester) => {
      const response = await app.inject(injectOptions('GET', url, requester))
      return { statusCode: response.statusCode, body: safeJson(response.body) }
    }
  }
  // channels-api frames ({ stream, payload }) share the socket and its connection state
  const channels = new ChannelsAdapter(ctx)
  ctx.extraFrame = channels.handleFrame

  app.get(options.path, {
    websocket: true,
    onRequest: async (request, reply) => {
      const refusal = checkOrigin(request, options.allowedOrigins)
      if (refusal !== undefined) await reply.code(403).send({ statusCode: 403, error: 'Forbidden', message: refusal })
    }
  }, (socket, request) => {
    const connection = new Connection(socket, requesterOf(request), ctx)
    connections.add(connection)
    socket.on('close', () => { connections.delete(connection) })
  })

  const realtime = createRealtimeDecorator({
    registry,
    counters,
    bus: () => bus,
    connections: () => connections.size,
    subscriptions: () => manager.subscriptionCount,
    settled: () => manager.idle(),
    resource: (stream, resourceOptions) => { channels.resources.declare(stream, resourceOptions) }
  })
  app.decorate('realtime', realtime)
  if (options.inspector) registerInspector(app, options.path, { stats: () => realtime.stats(), routes: () => manager.describe(), declared: () => registry.models().flatMap((model) => registry.forModel(model)) })

  app.addHook('onReady', async () => {
    await bus.ready()
  })
}

/** Merges consecutive events of one model and op (one transaction's rows travel as one event). */
function coalesce (events: ChangeEvent[]): ChangeEvent[] {
  const out: ChangeEvent[] = []
  for (const event of events) {
    const last = out[out.length - 1]
    if (last !== undefined && last.model === event.model && last.op === event.op && last.rows !== null && event.rows !== null) {
      last.rows = [...last.rows, ...event.rows]
    } else {
      out.push({ ...event })
    }
  }
  return out
}

export default fp(restLive, { name: 'fastify-rest-live', fastify: '5.x' })
export { restLive }
