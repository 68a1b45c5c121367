/**
 * Do the servers the test suite talks to answer? PostgreSQL at DATABASE_URL and
 * Redis at REDIS_URL (the defaults are the ones the tests use).
 *
 *   node scripts/services.js     prints what answers; exits 1 if something does not
 *
 * `scripts/test.js` (npm test) uses `checkServices()` to decide how to run tap.
 */
import { pathToFileURL } from 'node:url'
import pg from 'pg'
import { Redis } from 'ioredis'

export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

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
}
