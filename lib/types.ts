/**
 * Public types, and the module augmentation that makes `config.realtime` and
 * `app.realtime` typed for users.
 */
import type { FastifyRequest } from 'fastify'
import type { Knex } from 'knex'
import type { Cluster, ClusterNode, ClusterOptions, Redis, RedisOptions } from 'ioredis'

/** The `redis` option for a Redis Cluster: ioredis' startup nodes (it discovers the rest) and Cluster options. */
export interface RedisClusterOption {
  /** `{ host, port }`, a port, or a `"host:port"` / `redis://host:port` string. */
  cluster: ClusterNode[]
  /** ioredis Cluster options (per-node settings such as a password or TLS go in `redisOptions`). */
  clusterOptions?: ClusterOptions
}

/** A database row as Knex returns it. */
export type Row = Record<string, unknown>

/** The kind of write a change event reports. */
export type WriteOp = 'insert' | 'update' | 'delete'

/**
 * What a GET route puts in `config.realtime` to become subscribable: the
 * table it follows (`model`), a `queryset`, or both.
 */
export type RealtimeRouteConfig = RealtimeRouteFields & ({ model: string } | { queryset: Queryset })

/** The rows a request may see, as a Knex query builder on the route's table. */
type Queryset = (request: FastifyRequest) => Knex.QueryBuilder

/** The fields of `config.realtime`; see `RealtimeRouteConfig` for which are required. */
interface RealtimeRouteFields {
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
  queryset?: Queryset
  /**
   * The column a retrieve finds its instance by, and the route parameter that
   * carries it (DRF's `lookup_field`; default `'id'`). A subscription finds the
   * row by it, then follows the row by primary key.
   */
  lookup?: string
  /** The primary-key column (default `'id'`). */
  pk?: string
  /**
   * When this route's subscriptions must be re-authorised (overrides the
   * plugin's `expiresAt` for this route; see docs/revocation.md).
   */
  expiresAt?: ExpiresAt
}

/**
 * When a subscription's credentials stop being good: called with the request
 * the route authorised (after its hooks, so `request.user` is set), it answers
 * a Date or milliseconds since the epoch (a JWT's `exp * 1000`), or
 * undefined / null for "never". At that moment the subscription's checks are
 * re-run: refused, it ends; accepted with a later expiry, it goes on.
 */
export type ExpiresAt = (request: FastifyRequest) => Date | number | null | undefined | Promise<Date | number | null | undefined>

export interface RestLiveOptions {
  /** Writes through this Knex instance are captured after commit. */
  knex: Knex
  /**
   * A Redis URL, ioredis options or an ioredis instance; a Redis Cluster as
   * `{ cluster: [startup nodes], clusterOptions? }` or an ioredis `Cluster`
   * (sharded pub/sub, Redis >= 7); absent → in-process bus.
   */
  redis?: string | RedisOptions | Redis | RedisClusterOption | Cluster
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
  /**
   * Re-run every subscription's checks this often, in milliseconds (at least
   * 1000): `app.realtime.reauthorize()` on a timer, for apps that cannot call it
   * when access is revoked. Off by default.
   */
  reauthorizeEvery?: number
  /** When subscriptions must be re-authorised (see `ExpiresAt`); a route may override it. */
  expiresAt?: ExpiresAt
  /**
   * Rows one transaction (or one write outside a transaction) may hold until
   * commit, counted across its statements (default 10,000). Past it, the write
   * holds no rows: its change event says "re-read this model" and every view of
   * the model is re-read, so memory stays flat however many rows a write
   * touches. 0: every change is re-read.
   */
  maxCapturedRows?: number
}

/**
 * A live subscription, as `app.realtime.reauthorize(match)` shows it to
 * `match`: who holds it and what it follows. Read-only.
 */
export interface RealtimeSubscriptionInfo {
  /** The client's frame id (native), or a server-made id (`channels:<n>`) for channels-api. */
  readonly id: string | number
  /** Which frames the client speaks. */
  readonly protocol: 'native' | 'channels'
  /** The route's `config.realtime.model`. */
  readonly model: string
  /** The route's URL pattern, e.g. `/tasks/:id`. */
  readonly route: string
  /** The URL subscribed, e.g. `/tasks/7?done=false`. */
  readonly url: string
  /** The socket's upgrade request headers (those sent with every check: `authorization`, `cookie`…). */
  readonly headers: Readonly<Record<string, string>>
  /** The socket's peer address. */
  readonly remoteAddress: string | undefined
  /** channels-api only: the stream, the subscribed event action and pk. */
  readonly channels: Readonly<{ stream: string, action: string, pk: string | number | undefined }> | undefined
}

/** What one `app.realtime.reauthorize()` did. */
export interface ReauthorizeSummary {
  /** Subscriptions whose checks were re-run. */
  checked: number
  /** Those refused: each was sent an `error` and ended. */
  ended: number
  /** Those accepted with another view: each was moved to it and sent a `resync`. */
  moved: number
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
  /**
   * Re-runs the checks of this node's subscriptions that `match` selects (all
   * without it): the route's hooks and validation, with the subscribed URL and
   * the socket's credentials, as subscribing did. A refused subscription is
   * sent an `error` with the route's status and ended; one that now yields
   * another view follows it (`resync`). Resolves once all that is done. Call it
   * when access changes: logout, role change, ban (see docs/revocation.md).
   */
  reauthorize (match?: (subscription: RealtimeSubscriptionInfo) => boolean): Promise<ReauthorizeSummary>
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
