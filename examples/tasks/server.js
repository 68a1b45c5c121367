/**
 * The tasks demo: `npm start` (builds the package, then runs this file).
 * Open http://127.0.0.1:3000 in two tabs; PORT and HOST override the address.
 */
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import restLive from 'fastify-rest-live'
import { buildDemo } from './app.js'

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? '127.0.0.1'

// the built browser client, found through the package's own "exports"
const clientSource = await readFile(fileURLToPath(import.meta.resolve('fastify-rest-live/client')), 'utf8')

const app = await buildDemo({ restLive, clientSource, logger: { level: 'warn' } })
const url = await app.listen({ port, host })
process.stdout.write(`tasks demo: ${url}/ (open it in two tabs)\n`)

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    app.close().then(() => process.exit(0), () => process.exit(1))
  })
}
