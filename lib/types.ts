/**
 * Public types, and the module augmentation that makes `config.realtime` and
 * `app.realtime` typed for users.
 */
import type { FastifyRequest } from 'fastify'
import type { Knex } from 'knex'
import type { Redis, RedisOptions } from 'ioredis'

/** A database row as Knex returns it. */
export type Row = Record<string, unknown>

/** The kind of write a change event reports. */
export type WriteOp = 'insert' | 'update' | 'delete'

/** What a GET route puts in `config.realtime` to become subscribable. */
export interface RealtimeRouteConfig {
  /**
   * The table whose changes this route follows. May be left out when the
   * queryset takes no request (`() => db('tasks')`): it is then the table the
   * queryset reads, learnt at registration.
   */
  model?: string
  /**
   * The rows this request may see. Serves the REST response (through
   * `app.realtime.list/retrieve`) and every later re-check, so a subscriber is
   * never sent a row REST would not return to it. Without it, the plugin re-runs
   * the whole route for subscribers when the model changes (slower).
   */
  queryset?: (request: FastifyRequest) => Knex.QueryBuilder
  /**
   * The column a retrieve finds its instance by, and the route parameter that
   * carries it (DRF's `lookup_field`; default `'id'`). A subscription finds the
   * row by it, then follows the row by primary key.
   */
  lookup?: string
  /** The primary-key column (default `'id'`). */
  pk?: string
}

export interface RestLiveOptions {
  /** Writes through this Knex instance are captured after commit. */
  knex: Knex
  /** A Redis URL, ioredis options or an ioredis instance; absent → in-process bus. */
  redis?: string | RedisOptions | Redis
  /** The WebSocket route (default `/ws/subscribe`). */
  path?: string
  /** Redis channel prefix (default `rest-live`). */
  channelPrefix?: string
  /** Largest client frame in bytes (default 64 KiB). */
  maxPayload?: number
  /** Subscriptions per connection (default 100). */
  maxSubscriptions?: number
  /** Client frames per second per connection before 429 (default 100). */
  maxFramesPerSecond?: number
  /** Bytes queued on a socket before its broadcasts pause and it is resynced (default 4 MiB). */
  maxBufferedBytes?: number
  /**
   * Browser origins (`https://app.example.com`) allowed to open a socket. Unset: a
   * socket that carries cookies must come from the page's own host. Set: every
   * browser socket (any upgrade with an `Origin`) must come from one of these or
   * from the server's own origin; scheme, host and port are compared exactly.
   */
  allowedOrigins?: string[]
  /** Serve a debug page at `<path>/inspector` (default false). */
  inspector?: boolean
}

/** Counters for a metrics exporter. */
export interface RealtimeStats {
  connections: number
  subscriptions: number
  broadcastsSent: number
  resyncsSent: number
  eventsReceived: number
  gapsDetected: number
  databaseChecks: number
}

/** `app.realtime`: what handlers and application code call. */
export interface RealtimeDecorator {
  /** Runs the route's queryset: the REST list response. */
  list (request: FastifyRequest): Promise<Row[]>
  /** Runs the route's queryset narrowed to `:lookup`; throws 404 when absent. */
  retrieve (request: FastifyRequest): Promise<Row>
  /** Announces changes made outside Knex (raw SQL, another service). Rows need their primary key. */
  publish (model: string, op: WriteOp, rows: Row[]): Promise<void>
  /** Plain counters. */
  stats (): RealtimeStats
  /** Resolves once every change received so far has been re-checked and its broadcasts written (for tests). */
  settled (): Promise<void>
  /**
   * Declares a channels-api resource: `{ stream, payload }` frames on the socket
   * run the app's own routes under `prefix` (see docs/channels-api.md).
   */
  resource (stream: string, options: ResourceOptions): void
}

/** A channels-api resource (stream), declared with `app.realtime.resource(stream, options)`. */
export interface ResourceOptions {
  /** The routes' common path: list/create at `prefix`, retrieve/update/delete at `prefix/:pk`. */
  prefix: string
  /** Items per `list` page (default 25, channels-api's DEFAULT_PAGE_SIZE). */
  pageSize?: number
  /** The `model` named in event frames (default: the table of the realtime route that produced the event). */
  model?: string
}

declare module 'fastify' {
  interface FastifyContextConfig {
    realtime?: RealtimeRouteConfig
  }
  interface FastifyInstance {
    realtime: RealtimeDecorator
  }
}
