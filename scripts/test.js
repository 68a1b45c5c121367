/**
 * `npm test` runs this last, after the lint, the type-check and the type tests:
 * tap, with its 100% coverage gate when the suite can run whole.
 *
 * Tests that need PostgreSQL, Redis or the Redis Cluster (REDIS_CLUSTER_URL,
 * started by `npm run redis:cluster`) skip themselves when the server does not
 * answer, which leaves code uncovered. So:
 * - both answer: plain `tap` (every test runs, coverage must be 100%);
 * - one is missing and CI is set: fail now, naming it (CI must run everything);
 * - one is missing locally: say which and why, then run tap without failing on
 *   incomplete coverage (the report still shows what was not covered).
 *
 * Before tap starts, every TypeScript file of lib/ and test/ is compiled once
 * into tap's cache (.tap/ts/, see test/helpers/ts-loader.mjs), so the test
 * processes only read JavaScript.
 *
 * Then, for a whole run only, a second pass: the Knex fence's tests on the
 * oldest Knex 3.x (scripts/knex-versions.js).
 *
 * Arguments are passed to tap: `npm test -- test/client.test.ts` (no second pass).
 */
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cacheDir, compiled } from '../test/helpers/ts-compile.mjs'
import { runOnOldestKnex } from './knex-versions.js'
import { checkCluster, checkServices } from './services.js'

const root = fileURLToPath(new URL('../', import.meta.url))

/** Compiles lib/ and test/ into the cache and drops what no file needs any more. */
function compileOnce () {
  const keep = new Set()
  for (const dir of ['lib', 'test']) {
    for (const entry of readdirSync(join(root, dir), { recursive: true })) {
      if (!entry.endsWith('.ts') || entry.endsWith('.d.ts')) continue
      keep.add(basename(compiled(join(root, dir, entry)).file))
    }
  }
  for (const file of readdirSync(cacheDir)) if (!keep.has(file)) rmSync(join(cacheDir, file), { force: true })
}

const args = process.argv.slice(2)
const whole = args.length === 0
const failures = await checkServices()
const cluster = await checkCluster()
if (cluster !== undefined) failures.push(`${cluster}; start it with \`npm run redis:cluster\` (stop it with \`npm run redis:cluster:stop\`)`)
if (failures.length > 0) {
  for (const failure of failures) console.error(`error: ${failure}`)
  if (process.env.CI) {
    console.error('CI is set, so every test must run: start the servers, or point DATABASE_URL / REDIS_URL / REDIS_CLUSTER_URL at them.')
    process.exit(1)
  }
  console.error([
    'The tests that need it are skipped (each says so), so coverage cannot reach 100%:',
    'running tap WITHOUT the coverage gate. This run passing does not mean the suite',
    'passes; start the servers (or set DATABASE_URL / REDIS_URL / REDIS_CLUSTER_URL) for the full run.'
  ].join('\n'))
  args.unshift('--allow-incomplete-coverage')
}

compileOnce()

const require = createRequire(import.meta.url)
const tapPackage = require.resolve('tap/package.json')
const bin = JSON.parse(readFileSync(tapPackage, 'utf8')).bin
const tap = join(dirname(tapPackage), typeof bin === 'string' ? bin : bin.tap)
const child = spawn(process.execPath, [tap, ...args], { stdio: 'inherit' })
child.on('exit', async (code, signal) => {
  if (failures.length > 0 && !process.env.CI) console.error(`\nnote: ran without the coverage gate (${failures.length === 1 ? 'a server is' : 'servers are'} missing; see above)`)
  const status = code ?? (signal === null ? 1 : 128)
  if (status !== 0 || !whole) process.exit(status)
  process.exit(await runOnOldestKnex(tap))
})
