// Section 5: one instance, GET /tasks/:id.
// #region list-route
import { Type } from '@sinclair/typebox'
// #endregion list-route

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

// #region user
// Who is asking? Until section 9 adds logging in, every request is alice (user 1).
app.decorateRequest('user', null)
app.addHook('onRequest', async (request) => { request.user = { id: 1, name: 'alice' } })
// #endregion user

// #region list-route
const Task = Type.Object({ id: Type.Integer(), title: Type.String(), done: Type.Boolean() })
const TaskQuery = Type.Object({ done: Type.Optional(Type.Boolean()) }, { additionalProperties: false })

// The rows a request may see: this user's tasks, optionally filtered.
const myTasks = (request) => db('tasks')
  .where('owner_id', request.user.id)
  .modify((query) => { if (request.query.done !== undefined) query.where('done', request.query.done) })
  .orderBy('id')

app.get('/tasks', {
  schema: { querystring: TaskQuery, response: { 200: Type.Array(Task) } },
  config: { realtime: { model: 'tasks', queryset: myTasks } },
  handler: async (request) => await app.realtime.list(request)
})
// #endregion list-route

// #region retrieve-route
const TaskId = Type.Object({ id: Type.Integer({ minimum: 1 }) })

app.get('/tasks/:id', {
  schema: { params: TaskId, response: { 200: Task } },
  config: { realtime: { model: 'tasks', queryset: (request) => db('tasks').where('owner_id', request.user.id) } },
  handler: async (request) => await app.realtime.retrieve(request)   // queryset + where id = :id; 404 if none
})
// #endregion retrieve-route

// #region listen
// PORT=0 picks a free port; the log says which
await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
// #endregion listen
