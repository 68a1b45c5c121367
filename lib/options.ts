/**
 * Registration options: validated up front so a typo fails `register`, naming
 * the option, instead of surfacing as a confusing runtime fault.
 */
import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { Knex } from 'knex'
import { InvalidOptionError } from './errors.js'
import { MAX_TIMEOUT_MS } from './subscriptions/expiry.js'
import type { ExpiresAt, RestLiveOptions } from './types.js'
import { originOf } from './ws/origin.js'

const ScalarOptions = Type.Object({
  // optional here so a missing knex gets the specific message below, not "expected required property"
  knex: Type.Optional(Type.Unknown()),
  redis: Type.Optional(Type.Union([Type.String({ minLength: 1 }), Type.Object({})])),
  path: Type.Optional(Type.String({ pattern: '^/' })),
  channelPrefix: Type.Optional(Type.String({ minLength: 1, pattern: '^[^\\s*?\\[\\]]+$' })),
  maxPayload: Type.Optional(Type.Integer({ minimum: 64 })),
  maxSubscriptions: Type.Optional(Type.Integer({ minimum: 1 })),
  maxFramesPerSecond: Type.Optional(Type.Integer({ minimum: 1 })),
  maxBufferedBytes: Type.Optional(Type.Integer({ minimum: 1024 })),
  allowedOrigins: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
  inspector: Type.Optional(Type.Boolean()),
  // a periodic re-check more often than every second would run the routes' hooks as a busy loop; setTimeout caps the top
  reauthorizeEvery: Type.Optional(Type.Integer({ minimum: 1000, maximum: MAX_TIMEOUT_MS })),
  expiresAt: Type.Optional(Type.Function([Type.Unknown()], Type.Unknown())),
  // 0: no write carries rows, every change re-reads the model's views
  maxCapturedRows: Type.Optional(Type.Integer({ minimum: 0 }))
}, { additionalProperties: false })

const checkOptions = TypeCompiler.Compile(ScalarOptions)

// `redis: { cluster, clusterOptions? }`: checked on its own, so a mistake names the field inside `redis`
const Port = Type.Integer({ minimum: 1, maximum: 65535 })
const RedisCluster = Type.Object({
  cluster: Type.Array(Type.Union([
    Type.String({ minLength: 1 }),
    Port,
    Type.Object({ host: Type.Optional(Type.String({ minLength: 1 })), port: Type.Optional(Port) })
  ]), { minItems: 1 }),
  clusterOptions: Type.Optional(Type.Object({}))
}, { additionalProperties: false })

const checkRedisCluster = TypeCompiler.Compile(RedisCluster)

/** Options with every default filled in. */
export interface ResolvedOptions {
  knex: Knex
  redis: RestLiveOptions['redis']
  path: string
  channelPrefix: string
  maxPayload: number
  maxSubscriptions: number
  maxFramesPerSecond: number
  maxBufferedBytes: number
  /** Normalized origins (`scheme://host[:port]`). */
  allowedOrigins: ReadonlySet<string> | undefined
  inspector: boolean
  /** Milliseconds between periodic re-checks of every subscription; undefined: none. */
  reauthorizeEvery: number | undefined
  expiresAt: ExpiresAt | undefined
  /** Rows a transaction (or one write outside one) may hold for its change events; past it, the model's views are re-read. */
  maxCapturedRows: number
}

const defaults = {
  path: '/ws/subscribe',
  channelPrefix: 'rest-live',
  maxPayload: 64 * 1024,
  maxSubscriptions: 100,
  maxFramesPerSecond: 100,
  maxBufferedBytes: 4 * 1024 * 1024,
  // a few MB of rows at a few hundred bytes each; a change of more rows than a page is cheaper re-read than matched row by row
  maxCapturedRows: 10_000
} as const

function describe (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'string') return JSON.stringify(value)
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`
}

function isKnex (value: unknown): value is Knex {
  return typeof value === 'function' &&
    typeof (value as { client?: { query?: unknown } }).client?.query === 'function'
}

function checkedOrigin (entry: string, index: number): string {
  const origin = originOf(entry)
  if (origin === undefined) {
    throw new InvalidOptionError(`'allowedOrigins[${index}]'`, `must be an origin like "https://app.example.com" (scheme, host and optional port, nothing after), got ${JSON.stringify(entry)}`)
  }
  return origin
}

/** A `{ cluster }` object (not an ioredis instance, which is checked by ioredis itself). */
function checkRedisClusterOption (redis: object): void {
  if (!('cluster' in redis) || 'duplicate' in redis) return
  if (checkRedisCluster.Check(redis)) return
  const error = checkRedisCluster.Errors(redis).First()
  /* c8 ignore next */
  if (!error) throw new InvalidOptionError("'redis'", 'is invalid')
  const path = error.path.replace(/^\//, '').replaceAll('/', '.')
  // a node that fits no member of the union: say what a node may be
  const what = /^cluster\.\d+/.test(path)
    ? 'must be a "host:port" or redis:// URL string, a port number, or { host, port }'
    : error.message.toLowerCase()
  throw new InvalidOptionError(`'redis.${path}'`, `${what}, got ${describe(error.value)}`)
}

/**
 * ioredis reads any other scheme as a host-less socket path (`http://host` tries
 * to connect to `//host:6379`), so a wrong scheme would fail later and obscurely.
 */
function checkRedisUrl (url: string): void {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(url)?.[1]?.toLowerCase()
  if (scheme !== undefined && scheme !== 'redis' && scheme !== 'rediss') {
    throw new InvalidOptionError("'redis'", `must be a URL starting with redis:// (or rediss:// for TLS), got a ${scheme}:// URL`)
  }
}

export function resolveOptions (input: unknown): ResolvedOptions {
  if (input === null || typeof input !== 'object') {
    throw new InvalidOptionError('object', 'must be given: fastify-rest-live needs at least { knex }')
  }
  const options = input as Record<string, unknown>
  // fastify passes its own fields through plugin options; they are not ours to check
  const ours = Object.fromEntries(Object.entries(options).filter(([key]) => key !== 'prefix' && key !== 'logLevel' && key !== 'logSerializers'))
  if (!checkOptions.Check(ours)) {
    const error = checkOptions.Errors(ours).First()
    /* c8 ignore next */
    if (!error) throw new InvalidOptionError('object', 'is invalid')
    const name = String(error.path.replace(/^\//, '').split('/')[0])
    if (!(name in ScalarOptions.properties)) {
      throw new InvalidOptionError(`'${name}'`, 'is not a fastify-rest-live option (known: ' + Object.keys(ScalarOptions.properties).join(', ') + ')')
    }
    throw new InvalidOptionError(`'${name}'`, `${error.message.toLowerCase()}, got ${describe(options[name])}`)
  }
  const valid = ours as Static<typeof ScalarOptions>
  if (typeof valid.redis === 'string') checkRedisUrl(valid.redis)
  else if (valid.redis !== undefined) checkRedisClusterOption(valid.redis)
  if (!isKnex(valid.knex)) {
    throw new InvalidOptionError("'knex'", `must be a Knex instance, got ${valid.knex === undefined ? 'nothing' : describe(valid.knex)}`)
  }
  return {
    knex: valid.knex,
    redis: valid.redis as RestLiveOptions['redis'],
    path: valid.path ?? defaults.path,
    channelPrefix: valid.channelPrefix ?? defaults.channelPrefix,
    maxPayload: valid.maxPayload ?? defaults.maxPayload,
    maxSubscriptions: valid.maxSubscriptions ?? defaults.maxSubscriptions,
    maxFramesPerSecond: valid.maxFramesPerSecond ?? defaults.maxFramesPerSecond,
    maxBufferedBytes: valid.maxBufferedBytes ?? defaults.maxBufferedBytes,
    allowedOrigins: valid.allowedOrigins === undefined ? undefined : new Set(valid.allowedOrigins.map(checkedOrigin)),
    inspector: valid.inspector ?? false,
    reauthorizeEvery: valid.reauthorizeEvery,
    expiresAt: valid.expiresAt as ExpiresAt | undefined,
    maxCapturedRows: valid.maxCapturedRows ?? defaults.maxCapturedRows
  }
}
