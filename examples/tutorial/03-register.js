// Section 3: Fastify with the plugin registered; nothing is realtime yet.
// #region register
import Fastify from 'fastify'
import restLive from 'fastify-rest-live'
import { db } from './db.js'
import { createTables } from './schema.js'

await createTables(db)

const app = Fastify({ logger: true })
await app.register(restLive, {
  knex: db,                          // required
  // redis: process.env.REDIS_URL,   // several nodes: see section 12
  // path: '/ws/subscribe',          // the WebSocket route (default)
})
// #endregion register

// #region listen
// PORT=0 picks a free port; the log says which
await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
// #endregion listen
