// Section 9: logging in: a session cookie decides who is asking, for REST and the socket alike.
// #region page
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
// #endregion page

// #region sessions
import cookie from '@fastify/cookie'
import { sessions } from './sessions.js'
// #endregion sessions

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

// #region sessions
await app.register(cookie)
app.decorateRequest('user', null)
app.addHook('onRequest', async (request, reply) => {
  if (request.routeOptions.config.public === true) return      // the page, the client, /login
  request.user = await sessions.userFor(request.cookies.sid)   // your session store
  if (request.user === null) return await reply.code(401).send({ message: 'log in first: /login?as=alice' })
})

app.get('/login', {
  config: { public: true },
  schema: { querystring: Type.Object({ as: Type.String() }) }
}, async (request, reply) => {
  const sid = sessions.sidFor(request.query.as)
  if (sid === null) return await reply.code(403).send({ message: `no user ${request.query.as}` })
  return await reply.setCookie('sid', sid, { path: '/', httpOnly: true, sameSite: 'lax' }).redirect('/')
})
// #endregion sessions

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

// #region writes
const NewTask = Type.Object({ title: Type.String({ minLength: 1 }) }, { additionalProperties: false })
const TaskChanges = Type.Object({
  title: Type.Optional(Type.String({ minLength: 1 })),
  done: Type.Optional(Type.Boolean()),
  internal_note: Type.Optional(Type.String())
}, { additionalProperties: false, minProperties: 1 })
const NotFound = Type.Object({ message: Type.String() })

app.post('/tasks', {
  schema: { body: NewTask, response: { 201: Task } },
  handler: async (request, reply) => {
    const [task] = await db('tasks').insert({ title: request.body.title, owner_id: request.user.id }).returning('*')
    return await reply.code(201).send(task)
  }
})

app.patch('/tasks/:id', {
  schema: { params: TaskId, body: TaskChanges, response: { 200: Task, 404: NotFound } },   // Task: no internal_note
  handler: async (request, reply) => {
    const { id } = request.params
    const changed = await db.transaction(async (trx) => {
      const count = await trx('tasks').where({ id, owner_id: request.user.id }).update(request.body)
      if (count > 0) await trx('audit').insert({ task_id: id, user_id: request.user.id })
      return count
    })  // subscribers hear about the update here, after commit
    if (changed === 0) return await reply.code(404).send({ message: `no task ${id}` })
    return await db('tasks').where({ id }).first()
  }
})

app.delete('/tasks/:id', {
  schema: { params: TaskId, response: { 404: NotFound } },
  handler: async (request, reply) => {
    const deleted = await db('tasks').where({ id: request.params.id, owner_id: request.user.id }).del()
    if (deleted === 0) return await reply.code(404).send({ message: `no task ${request.params.id}` })
    return await reply.code(204).send()
  }
})
// #endregion writes

// #region publish
// Raw SQL names no table the plugin can see: announce the rows it changed yourself.
app.post('/tasks/complete-all', async (request, reply) => {
  const ids = await db('tasks').where({ owner_id: request.user.id, done: false }).pluck('id')
  await db.raw('update tasks set done = ? where owner_id = ?', [true, request.user.id])
  await app.realtime.publish('tasks', 'update', ids.map((id) => ({ id })))
  return await reply.code(204).send()
})
// #endregion publish

// #region page
const page = await readFile(new URL('./public/index.html', import.meta.url), 'utf8')
// the browser client, built into the package and found through its "exports"
const client = await readFile(fileURLToPath(import.meta.resolve('fastify-rest-live/client')), 'utf8')

// `public: true` lets anyone fetch these once section 9 requires logging in
app.get('/', { config: { public: true } }, async (request, reply) => await reply.type('text/html; charset=utf-8').send(page))
app.get('/client.js', { config: { public: true } }, async (request, reply) => await reply.type('text/javascript; charset=utf-8').send(client))
// #endregion page

// #region listen
// PORT=0 picks a free port; the log says which
await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
// #endregion listen
