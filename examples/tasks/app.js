/**
 * The tasks demo application: a SQLite in-memory table, REST routes for it,
 * and their live twins through fastify-rest-live. `server.js` starts it; the
 * tests build it without listening.
 *
 * Plain JavaScript so that it runs with `node` and no build step of its own.
 */
import { readFile } from 'node:fs/promises'
import { Type } from '@sinclair/typebox'
import Fastify from 'fastify'
import knex from 'knex'

// What one task looks like on the wire: the REST responses and every broadcast
// are serialized with it, so a column not named here never leaves the server.
const Task = Type.Object({
  id: Type.Integer(),
  title: Type.String(),
  done: Type.Boolean()
})
const TaskQuery = Type.Object({ done: Type.Optional(Type.Boolean()) }, { additionalProperties: false })
const IdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) })
const NewTask = Type.Object({ title: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false })
const TaskChanges = Type.Object({
  title: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  done: Type.Optional(Type.Boolean())
}, { additionalProperties: false, minProperties: 1 })
const NotFound = Type.Object({ message: Type.String() })

/**
 * Builds the demo app (ready, not listening).
 * @param {object} options
 * @param {import('fastify').FastifyPluginAsync<{ knex: import('knex').Knex, inspector?: boolean }>} options.restLive the plugin
 * @param {string} options.clientSource the browser client's JavaScript, served at /client.js
 * @param {boolean | object} [options.logger] Fastify's logger option
 */
export async function buildDemo (options) {
  const db = knex({ client: 'better-sqlite3', connection: { filename: ':memory:' }, useNullAsDefault: true })
  await db.schema.createTable('tasks', (table) => {
    table.increments('id').primary()
    table.string('title').notNullable()
    table.boolean('done').notNullable().defaultTo(false)
  })
  await db('tasks').insert([
    { title: 'Try fastify-rest-live', done: true },
    { title: 'Open this page in a second tab', done: false }
  ])
  const page = await readFile(new URL('./public/index.html', import.meta.url), 'utf8')

  const app = Fastify({ logger: options.logger })
  // before the routes: the plugin finds realtime routes as they are added.
  // inspector: a debug page at /ws/subscribe/inspector (leave it off in production)
  await app.register(options.restLive, { knex: db, inspector: true })
  app.addHook('onClose', async () => { await db.destroy() })

  // The rows a request may see. The same function answers the REST GET and
  // re-checks every change for subscribers, so the two cannot disagree.
  const allTasks = (request) => db('tasks')
    .orderBy('id')
    .modify((query) => {
      if (request.query.done !== undefined) query.where('done', request.query.done)
    })

  app.get('/tasks', {
    schema: { querystring: TaskQuery, response: { 200: Type.Array(Task) } },
    config: { realtime: { model: 'tasks', queryset: allTasks } },
    handler: async (request) => await app.realtime.list(request)
  })

  app.get('/tasks/:id', {
    schema: { params: IdParams, response: { 200: Task } },
    config: { realtime: { model: 'tasks', queryset: () => db('tasks') } },
    handler: async (request) => await app.realtime.retrieve(request)
  })

  // Writes are ordinary routes: their Knex writes are what subscribers hear about.
  app.post('/tasks', {
    schema: { body: NewTask, response: { 201: Task } },
    handler: async (request, reply) => {
      const [task] = await db('tasks').insert({ title: request.body.title }).returning('*')
      return await reply.code(201).send(task)
    }
  })

  app.patch('/tasks/:id', {
    schema: { params: IdParams, body: TaskChanges, response: { 200: Task, 404: NotFound } },
    handler: async (request, reply) => {
      const [task] = await db('tasks').where({ id: request.params.id }).update(request.body).returning('*')
      if (task === undefined) return await reply.code(404).send({ message: `no task ${request.params.id}` })
      return task
    }
  })

  app.delete('/tasks/:id', {
    schema: { params: IdParams, response: { 404: NotFound } },
    handler: async (request, reply) => {
      const deleted = await db('tasks').where({ id: request.params.id }).del()
      if (deleted === 0) return await reply.code(404).send({ message: `no task ${request.params.id}` })
      return await reply.code(204).send()
    }
  })

  // The page and the client it imports: no build step, no static-file plugin.
  app.get('/', async (_request, reply) => await reply.type('text/html; charset=utf-8').send(page))
  app.get('/client.js', async (_request, reply) => await reply.type('text/javascript; charset=utf-8').send(options.clientSource))

  await app.ready()
  return app
}
