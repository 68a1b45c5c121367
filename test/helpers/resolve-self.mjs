/**
 * `node --import ./test/helpers/ts-loader.mjs --import ./test/helpers/resolve-self.mjs app.js`:
 * the examples' `import … from 'fastify-rest-live'` loads REST_LIVE_LIB_URL (this
 * checkout's lib/index.ts, as JavaScript through ts-loader.mjs) and `fastify-rest-live/client`
 * REST_LIVE_CLIENT_URL, instead of an installed copy: the tutorial is tested
 * against the code beside it.
 */
import { register } from 'node:module'

register('./resolve-self-hooks.mjs', import.meta.url, {
  data: { lib: process.env.REST_LIVE_LIB_URL, client: process.env.REST_LIVE_CLIENT_URL }
})
