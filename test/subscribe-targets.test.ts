import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Knex } from 'knex'
import t, { type Test } from 'tap'
import { TaskSchema } from './helpers/app.js'
import { createTasksTable } from './helpers/db.js'
import { appFixture } from './helpers/fixture.js'
import type { TestClient } from './helpers/ws-client.js'

declare module 'fastify' {
  interface FastifyRequest {
    scope: number[] | undefined
  }
}

async function setup (t: Test): Promise<{ app: FastifyInstance, client: TestClient, table: string, other: string, db: Knex }> {
  const { app, db, tables: { table, other }, connect } = await appFixture(t, {
    tables: async (db, name) => {
      const table = name('tasks')
      await createTasksTable(db, table)
      await db(table).insert([{ title: 'a', owner_id: 1 }, { title: 'b', owner_id: 2 }, { title: 'c', owner_id: 3 }])
      const other = name('others')
      await createTasksTable(db, other)
      await db(other).insert([{ title: 'a', owner_id: 1 }, { title: 'b', owner_id: 2 }])
      return { table, other }
    },
    before: (app) => { app.decorateRequest('scope', undefined) },
    routes: (app, db, { table, other }) => {
      const list = { 200: { type: 'array', items: TaskSchema } } as const
      app.get('/scoped', {
        schema: {
          querystring: { type: 'object', properties: { owner: { type: 'array', items: { type: 'integer' } } } },
          response: list
        },
        // an array of route hooks: all of them run, in order, before the subscription is made
        preHandler: [
          async (request: FastifyRequest) => { request.scope = (request.query as { owner?: number[] }).owner ?? [1, 2, 3] },
          async (request: FastifyRequest) => { request.scope = request.scope?.filter((owner) => owner !== 3) }
        ],
        config: { realtime: { model: table, queryset: (request) => db(table).whereIn('owner_id', request.scope ?? []).orderBy('id') } },
        handler: async (request) => await app.realtime.list(request)
      })
      app.get('/owners/:owner_id(^\\d+)/tasks', {
        schema: { response: list },
        config: { realtime: { model: other, queryset: (request) => db(other).where('owner_id', (request.params as { owner_id: string }).owner_id) } },
        handler: async (request) => await app.realtime.list(request)
      })
      app.get('/text', { config: { realtime: { model: other } } }, async () => 'not json')
    }
  })
  const client = await connect()
  return { app, client, table, other, db }
}

t.test('query_params: arrays repeat the key, an empty object adds nothing; route hooks given as an array all run', async (t) => {
  const { client, table } = await setup(t)
  const two = await client.subscribe({ id: 1, model: table, action: 'list', query_params: { owner: [1, 3] }, snapshot: true })
  t.same((two.data as Array<{ title: string }>).map((row) => row.title), ['a'], 'owner=1&owner=3, then the second hook removed 3')
  t.equal(client.frames.length, 1)
  const all = await client.subscribe({ id: 2, path: '/scoped', snapshot: true })
  const empty = await client.ask({ type: 'subscribe', id: 3, model: table, action: 'list', query_params: {}, snapshot: true })
  t.same(empty.data, all.data, 'query_params {} is the bare URL')
})

t.test('view_kwargs fill route parameters, even ones with a pattern', async (t) => {
  const { client, other } = await setup(t)
  // two list routes follow the model, so model+action is ambiguous: subscribe by path
  const byPath = await client.subscribe({ id: 1, path: '/owners/2/tasks', snapshot: true })
  t.same((byPath.data as Array<{ title: string }>).map((row) => row.title), ['b'])
  const ambiguous = await client.subscribe({ id: 2, model: other, action: 'list', view_kwargs: { owner_id: 2 } })
  t.equal(ambiguous.code, 400)
  t.match(ambiguous.message, /several list routes; subscribe with "path"/)
})

t.test('a route parameter left out of view_kwargs is a 400 naming it', async (t) => {
  const { tables: table, connect } = await appFixture(t, {
    tables: async (db, name) => { const table = name('tasks'); await createTasksTable(db, table); return table },
    routes: (app, db, table) => {
      app.get('/owners/:owner_id/tasks', {
        schema: { response: { 200: { type: 'array', items: TaskSchema } } },
        config: { realtime: { model: table, queryset: () => db(table) } }
      }, async () => [])
    }
  })
  const client = await connect()
  const missing = await client.subscribe({ id: 1, model: table, action: 'list' })
  t.same(missing, { type: 'error', id: 1, code: 400, message: 'route /owners/:owner_id/tasks needs view_kwargs.owner_id' })
})

t.test('a route without queryset that answers something other than JSON is an empty view', async (t) => {
  const { app, client, db, other } = await setup(t)
  const text = await client.subscribe({ id: 1, path: '/text', snapshot: true })
  t.same(text, { type: 'subscribed', id: 1, data: [] })
  await db(other).insert({ title: 'd', owner_id: 1 })
  await client.flush(app)
  t.same(client.broadcasts(1), [], 'and stays empty')
})
