/**
 * Do the servers the test suite talks to answer? PostgreSQL at DATABASE_URL,
 * Redis at REDIS_URL, and the Redis Cluster at REDIS_CLUSTER_URL (the defaults
 * are the ones the tests use; `npm run redis:cluster` starts that cluster).
 *
 *   node scripts/services.js     prints what answers; exits 1 if something does not
 *                                (the cluster only counts when CI is set)
 *
 * `scripts/test.js` (npm test) uses `checkServices()` and `checkCluster()` to decide how to run tap.
 */
import { pathToFileURL } from 'node:url'
import pg from 'pg'
import { Redis } from 'ioredis'

export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
export const REDIS_CLUSTER_URL = process.env.REDIS_CLUSTER_URL ?? 'redis://127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103'

/** @returns {Promise<string[]>} one sentence per server that does not answer (empty: all do) */
export async function checkServices () {
  const failures = []
  const client = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 5000 })
  try {
    await client.connect()
    await client.query('select 1')
  } catch (err) {
    failures.push(`PostgreSQL at ${DATABASE_URL} (DATABASE_URL) does not answer: ${describe(err)}`)
  } finally {
    await client.end().catch(() => {})
  }
  const redis = new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: 5000, maxRetriesPerRequest: 0, retryStrategy: () => null })
  /** @type {unknown} */
  let cause
  redis.on('error', (err) => { cause ??= err })   // the socket's reason; connect() only says "Connection is closed"
  try {
    await redis.connect()
    if (await redis.ping() !== 'PONG') throw new Error('PING did not answer PONG')
  } catch (err) {
    failures.push(`Redis at ${REDIS_URL} (REDIS_URL) does not answer: ${describe(cause ?? err)}`)
  } finally {
    redis.disconnect()
  }
  return failures
}

/** @returns {Promise<string | undefined>} why the Redis Cluster does not answer (undefined: it does, with cluster_state:ok) */
export async function checkCluster () {
  const first = new URL(REDIS_CLUSTER_URL.split(',')[0] ?? '')
  const redis = new Redis({ host: first.hostname, port: Number(first.port || 6379), lazyConnect: true, connectTimeout: 5000, maxRetriesPerRequest: 0, retryStrategy: () => null })
  /** @type {unknown} */
  let cause
  redis.on('error', (err) => { cause ??= err })
  try {
    await redis.connect()
    const info = String(await redis.call('CLUSTER', 'INFO'))
    if (!info.includes('cluster_state:ok')) throw new Error(info.split('\r\n')[0] ?? 'cluster_state is not ok')
    return undefined
  } catch (err) {
    return `the Redis Cluster at ${REDIS_CLUSTER_URL} (REDIS_CLUSTER_URL) does not answer: ${describe(cause ?? err)}`
  } finally {
    redis.disconnect()
  }
}

/** @param {unknown} err */
function describe (err) {
  if (err instanceof AggregateError && err.errors.length > 0) return describe(err.errors[0])
  return err instanceof Error ? (err.message || ('code' in err ? String(err.code) : err.name)) : String(err)
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const failures = await checkServices()
  for (const failure of failures) console.error(`error: ${failure}`)
  if (failures.length > 0) {
    console.error('Start both servers, or point DATABASE_URL / REDIS_URL at them.')
    process.exit(1)
  }
  console.log(`PostgreSQL (${DATABASE_URL}) and Redis (${REDIS_URL}) answer`)
  const cluster = await checkCluster()
  if (cluster !== undefined) {
    console.error(`${process.env.CI ? 'error' : 'note'}: ${cluster}; start it with \`npm run redis:cluster\``)
    if (process.env.CI) process.exit(1)
  } else {
    console.log(`the Redis Cluster (${REDIS_CLUSTER_URL}) answers`)
  }
}
