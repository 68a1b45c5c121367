/**
 * Opening the two Redis connections the bus needs, from whatever the `redis`
 * option holds, and closing only what the plugin opened.
 *
 * - a URL or ioredis options: the plugin creates a publisher and a subscriber
 *   and quits both on close;
 * - an ioredis instance: it publishes on that instance (never closed by the
 *   plugin) and subscribes on `instance.duplicate()`, which it does close.
 *
 * Startup never retries forever: each connection must be ready within a
 * bounded time, or registration fails with RedisConnectError naming the
 * address it tried and why.
 */
import { Redis, type RedisOptions } from 'ioredis'
import { RedisConnectError } from '../errors.js'

export interface RedisConnections {
  publisher: Redis
  subscriber: Redis
  /** Whether the publisher was created here (and so is closed here). */
  ownsPublisher: boolean
  /** host:port (or socket path) the connections go to, for messages. */
  address: string
}

export interface OpenOptions {
  redis: unknown
  /** CLIENT SETNAME for the connections the plugin creates (findable in CLIENT LIST). */
  name: string
  /** How long each connection may take to become ready at startup. */
  timeoutMs: number
}

/** Duck-typed, so an instance from another copy of ioredis is recognised too. */
function isInstance (value: unknown): value is Redis {
  const candidate = value as Partial<Redis>
  return typeof candidate.duplicate === 'function' && typeof candidate.publish === 'function' && typeof candidate.status === 'string'
}

/** Where a connection goes, without credentials. */
export function addressOf (connection: Redis): string {
  const options = connection.options
  return options.path ?? `${options.host}:${options.port}`
}

export async function openRedisConnections (options: OpenOptions): Promise<RedisConnections> {
  // ours: connect explicitly (lazyConnect) so a failure is an error here, not a retry loop;
  // the subscriber re-subscribes itself after a reconnect, then resyncs (see redis-bus.ts)
  const own: RedisOptions = { lazyConnect: true, connectionName: `${options.name}:pub` }
  const sub: RedisOptions = { lazyConnect: true, autoResubscribe: false, connectionName: `${options.name}:sub` }
  let publisher: Redis
  let subscriber: Redis
  let ownsPublisher = true
  if (isInstance(options.redis)) {
    publisher = options.redis
    ownsPublisher = false
    subscriber = publisher.duplicate(sub)
  } else if (typeof options.redis === 'string') {
    publisher = new Redis(options.redis, own)
    subscriber = new Redis(options.redis, sub)
  } else {
    publisher = new Redis({ ...options.redis as RedisOptions, ...own })
    subscriber = new Redis({ ...options.redis as RedisOptions, ...sub })
  }
  const address = addressOf(subscriber)
  try {
    // one after the other, so a failure leaves no attempt (or timer) of the other behind
    await ready(publisher, address, options.timeoutMs)
    await ready(subscriber, address, options.timeoutMs)
  } catch (err) {
    subscriber.disconnect()
    if (ownsPublisher) publisher.disconnect()
    throw err
  }
  return { publisher, subscriber, ownsPublisher, address }
}

/** Resolves when the connection is ready; RedisConnectError after `timeoutMs` or on a refused connection. */
async function ready (connection: Redis, address: string, timeoutMs: number): Promise<void> {
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
export async function closeConnection (connection: Redis): Promise<void> {
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
