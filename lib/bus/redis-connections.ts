/**
 * Opening the two Redis connections the bus needs, from whatever the `redis`
 * option holds, and closing only what the plugin opened.
 *
 * - a URL or ioredis options: the plugin creates a publisher and a subscriber
 *   and quits both on close;
 * - an ioredis instance: it publishes on that instance (never closed by the
 *   plugin) and subscribes on `instance.duplicate()`, which it does close;
 * - `{ cluster: [nodes], clusterOptions? }` or an ioredis `Cluster`: the same
 *   over a Redis Cluster, with sharded pub/sub (SPUBLISH / SSUBSCRIBE, Redis 7):
 *   the subscriber is a Cluster with `shardedSubscribers`, so ioredis keeps one
 *   subscriber connection per master and sends each SSUBSCRIBE to the master
 *   owning the channel's slot.
 *
 * Startup never retries forever: each connection must be ready within a
 * bounded time, or registration fails with RedisConnectError naming the
 * address it tried and why.
 */
import { Cluster, Redis, type ClusterNode, type ClusterOptions, type RedisOptions } from 'ioredis'
import { RedisConnectError } from '../errors.js'
import type { RedisClusterOption } from '../types.js'

/** A connection the bus uses: one Redis, or a whole Cluster. */
export type Connection = Redis | Cluster

export interface RedisConnections {
  publisher: Connection
  subscriber: Connection
  /** Whether the publisher was created here (and so is closed here). */
  ownsPublisher: boolean
  /** host:port (or socket path, or the cluster's startup nodes) the connections go to, for messages. */
  address: string
  /** A Redis Cluster: sharded pub/sub (SPUBLISH / SSUBSCRIBE / `smessage`). */
  sharded: boolean
}

export interface OpenOptions {
  redis: unknown
  /** CLIENT SETNAME for the connections the plugin creates (findable in CLIENT LIST). */
  name: string
  /** How long each connection may take to become ready at startup. */
  timeoutMs: number
}

/** Duck-typed, so an instance from another copy of ioredis is recognised too (a Cluster as well: see isCluster). */
function isInstance (value: unknown): value is Connection {
  const candidate = value as Partial<Redis>
  return typeof candidate.duplicate === 'function' && typeof candidate.publish === 'function' && typeof candidate.status === 'string'
}

function isCluster (value: Connection): value is Cluster {
  return value.isCluster
}

function isClusterConfig (value: unknown): value is RedisClusterOption {
  return typeof value === 'object' && value !== null && 'cluster' in value
}

/** Where a connection goes, without credentials. */
export function addressOf (connection: Redis): string {
  const options = connection.options
  return options.path ?? `${options.host}:${options.port}`
}

/** A cluster's startup nodes, without credentials. */
export function clusterAddress (nodes: ClusterNode[]): string {
  return 'cluster ' + nodes.map((node) => {
    if (typeof node === 'number') return `127.0.0.1:${node}`
    if (typeof node === 'string') return node.replace(/^rediss?:\/\/(?:[^@/]*@)?/, '')
    return `${node.host ?? '127.0.0.1'}:${node.port ?? 6379}`
  }).join(',')
}

/** The options of the plugin's Cluster connections: its own connection names, lazily connected, never re-subscribing behind the bus's back. */
function clusterOptions (base: ClusterOptions | undefined, name: string, subscriber: boolean): ClusterOptions {
  return {
    ...base,
    lazyConnect: true,
    // the ready check makes 'ready' wait a round trip, past the sharded subscribers' first 'subscribersReady'
    enableReadyCheck: true,
    ...(subscriber ? { shardedSubscribers: true } : {}),
    redisOptions: { ...base?.redisOptions, connectionName: name }
  }
}

export async function openRedisConnections (options: OpenOptions): Promise<RedisConnections> {
  // ours: connect explicitly (lazyConnect) so a failure is an error here, not a retry loop;
  // the subscriber re-subscribes itself after a reconnect, then resyncs (see redis-bus.ts)
  const own: RedisOptions = { lazyConnect: true, connectionName: `${options.name}:pub` }
  const sub: RedisOptions = { lazyConnect: true, autoResubscribe: false, connectionName: `${options.name}:sub` }
  let publisher: Connection
  let subscriber: Connection
  let ownsPublisher = true
  let address: string
  if (isInstance(options.redis) && isCluster(options.redis)) {
    publisher = options.redis
    ownsPublisher = false
    subscriber = publisher.duplicate([], clusterOptions(publisher.options, `${options.name}:sub`, true))
    address = 'the Redis Cluster given'
  } else if (isInstance(options.redis)) {
    publisher = options.redis
    ownsPublisher = false
    subscriber = (publisher as Redis).duplicate(sub)
  } else if (isClusterConfig(options.redis)) {
    const { cluster, clusterOptions: base } = options.redis
    publisher = new Cluster(cluster, clusterOptions(base, `${options.name}:pub`, false))
    subscriber = new Cluster(cluster, clusterOptions(base, `${options.name}:sub`, true))
    address = clusterAddress(cluster)
  } else if (typeof options.redis === 'string') {
    publisher = new Redis(options.redis, own)
    subscriber = new Redis(options.redis, sub)
  } else {
    publisher = new Redis({ ...options.redis as RedisOptions, ...own })
    subscriber = new Redis({ ...options.redis as RedisOptions, ...sub })
  }
  address ??= addressOf(subscriber as Redis)
  try {
    // one after the other, so a failure leaves no attempt (or timer) of the other behind
    await ready(publisher, address, options.timeoutMs)
    await ready(subscriber, address, options.timeoutMs)
  } catch (err) {
    subscriber.disconnect()
    if (ownsPublisher) publisher.disconnect()
    throw err
  }
  return { publisher, subscriber, ownsPublisher, address, sharded: isCluster(subscriber) }
}

/** Resolves when the connection is ready; RedisConnectError after `timeoutMs` or on a refused connection. */
async function ready (connection: Connection, address: string, timeoutMs: number): Promise<void> {
  if (connection.status === 'ready') return
  if (connection.status === 'end') throw new RedisConnectError(address, 'the ioredis instance given has been closed')
  let lastError: Error | undefined
  let timer: NodeJS.Timeout | undefined
  let onReady: (() => void) | undefined
  const onError = (err: Error): void => { lastError = err }
  connection.on('error', onError)
  try {
    await Promise.race([
      // a lazy connection (ours, or a lazyConnect instance) is started here; one already connecting is awaited
      connection.status === 'wait'
        ? connection.connect()
        : new Promise<void>((resolve) => { onReady = resolve; connection.once('ready', onReady) }),
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => { reject(new Error(`not ready within ${timeoutMs} ms`)) }, timeoutMs)
      })
    ])
  } catch (err) {
    throw new RedisConnectError(address, (lastError ?? err as Error).message)
  } finally {
    clearTimeout(timer)
    connection.off('error', onError)
    if (onReady !== undefined) connection.off('ready', onReady)
  }
}

/** Closes a connection the plugin created: QUIT when it can, otherwise drop it (also stops reconnecting). */
export async function closeConnection (connection: Connection): Promise<void> {
  if (connection.status === 'ready') {
    try {
      await connection.quit()
      return
    /* c8 ignore next 3 */
    } catch {
      // the connection went away while quitting: fall through and drop it
    }
  }
  connection.disconnect()
}
