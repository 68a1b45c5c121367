/**
 * `node --import ./test/helpers/ts-loader.mjs`: runs this repository's
 * TypeScript (lib/, test/) from a cache of compiled files, so no test process
 * loads the TypeScript compiler. `node scripts/test.js` fills the cache once
 * per run; a file missing from it (a run of one test file, an edit since) is
 * compiled here and stored.
 *
 * .taprc starts every test process with it in NODE_OPTIONS, ahead of tap's own
 * loaders, and sets TAP_TYPE_STRIP_ONLY, tap's switch that keeps its
 * TypeScript plugin from loading ts-node (about a second of CPU per process).
 */
import { register } from 'node:module'

register('./ts-loader-hooks.mjs', import.meta.url)
