/**
 * `npm test` runs this last, after the lint, the type-check and the type tests:
 * tap, with its 100% coverage gate when the suite can run whole.
 *
 * Tests that need PostgreSQL or Redis skip themselves when the server does not
 * answer, which leaves code uncovered. So:
 * - both answer: plain `tap` (every test runs, coverage must be 100%);
 * - one is missing and CI is set: fail now, naming it (CI must run everything);
 * - one is missing locally: say which and why, then run tap without failing on
 *   incomplete coverage (the report still shows what was not covered).
 *
 * Arguments are passed to tap: `npm test -- test/client.test.ts`.
 */
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { checkServices } from './services.js'

const args = process.argv.slice(2)
const failures = await checkServices()
if (failures.length > 0) {
  for (const failure of failures) console.error(`error: ${failure}`)
  if (process.env.CI) {
    console.error('CI is set, so every test must run: start the servers, or point DATABASE_URL / REDIS_URL at them.')
    process.exit(1)
  }
  console.error([
    'The tests that need it are skipped (each says so), so coverage cannot reach 100%:',
    'running tap WITHOUT the coverage gate. This run passing does not mean the suite',
    'passes; start the servers (or set DATABASE_URL / REDIS_URL) for the full run.'
  ].join('\n'))
  args.unshift('--allow-incomplete-coverage')
}

const require = createRequire(import.meta.url)
const tapPackage = require.resolve('tap/package.json')
const bin = JSON.parse(readFileSync(tapPackage, 'utf8')).bin
const tap = join(dirname(tapPackage), typeof bin === 'string' ? bin : bin.tap)
const child = spawn(process.execPath, [tap, ...args], { stdio: 'inherit' })
child.on('exit', (code, signal) => {
  if (failures.length > 0 && !process.env.CI) console.error(`\nnote: ran without the coverage gate (${failures.length === 1 ? 'a server is' : 'servers are'} missing; see above)`)
  process.exit(code ?? (signal === null ? 1 : 128))
})
