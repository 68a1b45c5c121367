/**
 * The second pass of `npm test`: the tests of the Knex fence (lib/knex/internals.ts,
 * every use of Knex's private internals) again, on the oldest Knex 3.x the peer
 * range allows (the `knex-oldest` dev dependency, npm:knex@3.0.1; 3.0.0 cannot be
 * loaded). The first pass ran them on the newest. No coverage gate here: the first
 * pass measured it; this one only asks "does the fence still hold on this Knex".
 *
 * The files are the ones that drive each access of the fence: the capture's
 * interception of runner and query (capture, savepoints: transaction clients made
 * from the client's prototype; shared-knex: putting it back), the evaluator's
 * reading of builders (matcher), the search path and schemas (schemas-qualified),
 * and the table-name reading checked against Knex's own SQL (knex-fence).
 */
import { spawn } from 'node:child_process'

export const OLDEST = 'knex-oldest'

export const fenceTests = [
  'test/knex-fence.test.ts',
  'test/capture.test.ts',
  'test/savepoints.test.ts',
  'test/matcher.test.ts',
  'test/schemas-qualified.test.ts',
  'test/shared-knex.test.ts'
]

/** Runs the fence's tests with the oldest Knex; resolves to tap's exit code. */
export function runOnOldestKnex (tap, extraArgs = []) {
  console.log(`\n# ---- second pass: the Knex fence on the oldest Knex 3.x (KNEX_PACKAGE=${OLDEST}), no coverage gate ----`)
  const child = spawn(process.execPath, [tap, '--disable-coverage', ...extraArgs, ...fenceTests], {
    stdio: 'inherit',
    env: { ...process.env, KNEX_PACKAGE: OLDEST }
  })
  return new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      console.log(`# ---- second pass (oldest Knex 3.x): ${code === 0 ? 'passed' : 'FAILED'} ----`)
      resolve(code ?? (signal === null ? 1 : 128))
    })
  })
}
