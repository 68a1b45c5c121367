/**
 * The machine's Redis for tests (REDIS_URL, default redis://127.0.0.1:6379),
 * and the private Redis Cluster of `npm run redis:cluster` (REDIS_CLUSTER_URL,
 * default redis://127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103).
 * Tests isolate themselves with a unique channelPrefix, so files can run in
 * parallel against one server.
 */
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net'
import type { FastifyBaseLogger } from 'fastify'
import { Redis } from 'ioredis'
import type { RedisClusterOption } from '../../lib/types.js'

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
export const REDIS_CLUSTER_URL = process.env.REDIS_CLUSTER_URL ?? 'redis://127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103'

/** REDIS_CLUSTER_URL's nodes: `redis://host:port,host:port,…` (each may carry its own redis://). */
export function clusterNodes (url = REDIS_CLUSTER_URL): Array<{ host: string, port: number }> {
  return url.split(',').map((part) => {
    const node = new URL(part.includes('://') ? part : `redis://${part}`)
    return { host: node.hostname, port: Number(node.port || 6379) }
  })
}

/** The plugin's `redis` option for the test cluster. */
export function clusterOption (): RedisClusterOption {
  return { cluster: clusterNodes() }
}

/** Whether the test cluster answers with cluster_state:ok; in CI a missing cluster is a failure, not a skip. */
export async function redisClusterAvailable (): Promise<boolean> {
  const client = new Redis({ ...clusterNodes()[0], lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
  client.on('error', () => {})
  try {
    await client.connect()
    const info = await client.cluster('INFO')
    if (!info.includes('cluster_state:ok')) throw new Error(`the cluster at ${REDIS_CLUSTER_URL} is not ok: ${info.split('\r\n')[0] ?? ''}`)
    return true
  } catch (err) {
    if (process.env.CI) throw err
    return false
  } finally {
    client.disconnect()
  }
}

/** Why the cluster tests skip, when they do. */
export const CLUSTER_SKIP = `needs a Redis Cluster at REDIS_CLUSTER_URL (${REDIS_CLUSTER_URL}): start one with \`npm run redis:cluster\` (stop it with \`npm run redis:cluster:stop\`)`

/** A connection found in CLIENT LIST, and how to kill it. */
export interface ClientEntry { id: string, name: string, kill: () => Promise<number> }

/**
 * Test bookkeeping on a single Redis or a cluster alike: CLIENT LIST / KILL and
 * subscriber counts (PUBSUB NUMSUB, or SHARDNUMSUB summed over the masters).
 */
export interface RedisAdmin {
  /** The connections whose CLIENT SETNAME contains `namePart`. */
  clients: (namePart: string) => Promise<ClientEntry[]>
  subscriberCount: (channel: string) => Promise<number>
  /** Channels with a subscriber matching `pattern` (PUBSUB CHANNELS / SHARDCHANNELS). */
  channels: (pattern: string) => Promise<string[]>
  quit: () => Promise<void>
}

export function redisAdmin (sharded: boolean): RedisAdmin {
  if (!sharded) {
    const client = redisClient()
    return {
      clients: async (namePart) => await clientsOn([client], namePart),
      subscriberCount: async (channel) => await subscriberCount(client, channel),
      channels: async (pattern) => await client.pubsub('CHANNELS', pattern) as string[],
      quit: async () => { await client.quit() }
    }
  }
  const masters = clusterNodes().map((node) => new Redis({ ...node, lazyConnect: true, maxRetriesPerRequest: 1 }))
  return {
    clients: async (namePart) => await clientsOn(masters, namePart),
    subscriberCount: async (channel) => {
      let count = 0
      for (const master of masters) count += Number((await master.pubsub('SHARDNUMSUB', channel) as [string, number])[1])
      return count
    },
    channels: async (pattern) => {
      const found: string[] = []
      for (const master of masters) found.push(...await master.pubsub('SHARDCHANNELS', pattern) as string[])
      return found
    },
    quit: async () => { await Promise.all(masters.map(async (master) => await master.quit())) }
  }
}

async function clientsOn (servers: Redis[], namePart: string): Promise<ClientEntry[]> {
  const found: ClientEntry[] = []
  for (const server of servers) {
    const list = await server.client('LIST') as string
    for (const line of list.split('\n')) {
      const name = /(?:^| )name=(\S*)/.exec(line)?.[1]
      const id = /(?:^| )id=(\d+)/.exec(line)?.[1]
      if (name === undefined || id === undefined || !name.includes(namePart)) continue
      found.push({ id, name, kill: async () => Number(await server.client('KILL', 'ID', id)) })
    }
  }
  return found
}

/** The two kinds of Redis the multi-node tests run against. */
export interface RedisTarget {
  name: string
  sharded: boolean
  /** The plugin's `redis` option. */
  option: () => string | RedisClusterOption
  /** false, or why the tests skip. */
  skip: () => Promise<false | string>
}

export const redisTargets: RedisTarget[] = [
  { name: 'Redis', sharded: false, option: () => REDIS_URL, skip: async () => await redisAvailable() ? false : 'Redis is not running' },
  { name: 'Redis Cluster', sharded: true, option: clusterOption, skip: async () => await redisClusterAvailable() ? false : CLUSTER_SKIP }
]

/** A plain connection for test bookkeeping (PUBSUB, CLIENT LIST / KILL); quit it in teardown. */
export function redisClient (): Redis {
  return new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 })
}

/** Whether Redis answers; in CI a missing server is a failure, not a skip. */
export async function redisAvailable (): Promise<boolean> {
  const client = new Redis(REDIS_URL, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
  client.on('error', () => {})
  try {
    await client.connect()
    await client.ping()
    return true
  } catch (err) {
    if (process.env.CI) throw err
    return false
  } finally {
    client.disconnect()
  }
}

/** The connections whose CLIENT SETNAME starts with `namePrefix` (the bus names them `<channelPrefix>:<nodeId>:pub|sub`). */
export async function clients (client: Redis, namePrefix: string): Promise<Array<{ id: string, name: string }>> {
  const list = await client.client('LIST') as string
  const found: Array<{ id: string, name: string }> = []
  for (const line of list.split('\n')) {
    const name = /(?:^| )name=(\S*)/.exec(line)?.[1]
    const id = /(?:^| )id=(\d+)/.exec(line)?.[1]
    if (name !== undefined && id !== undefined && name.startsWith(namePrefix)) found.push({ id, name })
  }
  return found
}

/** Kills the connections whose name starts with `namePrefix` (only this test's), as Redis would on an output-buffer overflow. */
export async function killClients (client: Redis, namePrefix: string): Promise<number> {
  let killed = 0
  for (const { id } of await clients(client, namePrefix)) killed += Number(await client.client('KILL', 'ID', id))
  return killed
}

/** Subscribers per channel, as Redis counts them. */
export async function subscriberCount (client: Redis, channel: string): Promise<number> {
  const reply = await client.pubsub('NUMSUB', channel) as [string, number]
  return Number(reply[1])
}

/** A logger that keeps what it is told, for asserting on warnings. */
export interface LogRecord { level: string, obj: unknown, msg: string | undefined }
export function recordingLogger (): { log: FastifyBaseLogger, records: LogRecord[], messages: (level: string) => string[] } {
  const records: LogRecord[] = []
  const at = (level: string) => (obj: unknown, msg?: string): void => { records.push({ level, obj, msg }) }
  const log = {
    level: 'trace',
    fatal: at('fatal'),
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    trace: at('trace'),
    silent: () => {},
    child: () => log
  }
  return {
    log: log as unknown as FastifyBaseLogger,
    records,
    messages: (level) => records.filter((record) => record.level === level).map((record) => record.msg ?? '')
  }
}

/**
 * A TCP proxy in front of Redis that a test can cut and restore: Redis lost
 * (and back) for the connections that go through it, and for nobody else.
 */
export class RedisProxy {
  readonly #sockets = new Set<Socket>()
  #server: Server | undefined
  port = 0

  static async start (): Promise<RedisProxy> {
    const proxy = new RedisProxy()
    await proxy.restore()
    return proxy
  }

  get url (): string {
    return `redis://127.0.0.1:${this.port}`
  }

  /** Listens again (on the same port after a cut). */
  async restore (): Promise<void> {
    const upstream = new URL(REDIS_URL)
    const server = createServer((client) => {
      const redis = connect(Number(upstream.port === '' ? 6379 : upstream.port), upstream.hostname)
      for (const socket of [client, redis]) {
        this.#sockets.add(socket)
        socket.on('error', () => { client.destroy(); redis.destroy() })
        socket.on('close', () => { this.#sockets.delete(socket); client.destroy(); redis.destroy() })
      }
      client.pipe(redis)
      redis.pipe(client)
    })
    this.#server = server
    await new Promise<void>((resolve) => { server.listen(this.port, '127.0.0.1', resolve) })
    this.port = (server.address() as AddressInfo).port
  }

  /** Refuses new connections and drops the open ones. */
  async cut (): Promise<void> {
    const server = this.#server
    this.#server = undefined
    for (const socket of this.#sockets) socket.destroy()
    if (server !== undefined) await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
  }
}

/** A TCP server that accepts connections and never answers: a Redis that hangs. */
export async function silentServer (): Promise<{ url: string, close: () => Promise<void> }> {
  const sockets = new Set<Socket>()
  const server = createServer((socket) => { sockets.add(socket); socket.on('error', () => {}) })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  return {
    url: `redis://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    }
  }
}
