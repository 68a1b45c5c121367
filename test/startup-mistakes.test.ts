/**
 * Mistakes a user makes when wiring a route or the plugin, each answered with a
 * message that names the route or option and says the fix, instead of a bare
 * "internal error", a misleading one, or a subscription that never hears a write.
 */
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import type { Knex } from 'knex'
import t, { type Test } from 'tap'
import restLive, { type RestLiveOptions } from '../lib/index.js'
import type { LogLine } from './helpers/app.js'
import { createTasksTable, sqlite, uniqueName } from './helpers/db.js'
import { appFixture, tasksTable } from './helpers/fixture.js'
import { TestClient } from './helpers/ws-client.js'

async function database (t: Test): Promise<{ db: Knex, table: string }> {
  const db = sqlite()
  const table = uniqueName('tasks')
  await createTasksTable(db, table)
  t.teardown(async () => { await db.destroy() })
  return { db, table }
}

t.test('redis must be a redis:// or rediss:// URL', async (t) => {
  const { db } = await database(t)
  for (const url of ['http://127.0.0.1:6379', 'HTTPS://cache.example:6380', 'postgres://127.0.0.1']) {
    const app = Fastify()
    t.teardown(async () => { await app.close() })
    const err = await app.register(restLive, { knex: db, redis: url } as RestLiveOptions).ready().then(() => undefined, (err: unknown) => err)
    const scheme = url.slice(0, url.indexOf(':')).toLowerCase()
    t.match(err, {
      code: 'FST_REST_LIVE_INVALID_OPTION',
      message: `fastify-rest-live: option 'redis' must be a URL starting with redis:// (or rediss:// for TLS), got a ${scheme}:// URL`
    }, url)
    t.notMatch(String((err as Error).message), /ENOENT/)
  }
})

t.test('the REST answer of a route registered before the plugin says so', async (t) => {
  const { app } = await appFixture(t, {
    logs: [],
    tables: tasksTable(),
    before: (app, db, table) => {
      app.get('/early', { config: { realtime: { model: table, queryset: () => db(table) } } }, async (request) => await app.realtime.list(request))
    }
  })
  const response = await app.inject('/early')
  t.equal(response.statusCode, 500)
  t.equal(response.json().code, 'FST_REST_LIVE_ROUTE_BEFORE_PLUGIN')
  t.match(response.json().message, /GET \/early has config\.realtime but was registered before the plugin.*register fastify-rest-live before your routes/)
  t.notMatch(response.json().message, /has no config\.realtime/)
})

t.test('a queryset that returns no query builder', async (t) => {
  const logs: LogLine[] = []
  const wrongOf = (db: Knex, table: string): Array<[string, () => unknown, string]> => [
    ['/undefined', () => undefined, 'undefined (did it forget to return?)'],
    ['/null', () => null, 'null'],
    ['/array', () => [], 'an array (rows already fetched: return the builder, do not await it)'],
    ['/raw', () => db.raw(`select * from ${table}`), 'a raw query (db.raw has no table to follow)'],
    ['/promise', async () => await db(table), 'a promise (the queryset must not be async nor await the query)'],
    ['/object', () => ({ table }), 'an object'],
    ['/string', () => table, 'a string']
  ]
  const { app, db, tables: table, connect } = await appFixture(t, {
    logs,
    tables: tasksTable(),
    routes: (app, db, table) => {
      for (const [url, queryset] of wrongOf(db, table)) {
        // a queryset of the request: only a request can call it, so the first one finds the mistake
        const ofRequest = (request: FastifyRequest): Knex.QueryBuilder => { void request; return queryset() as Knex.QueryBuilder }
        app.get(url, { config: { realtime: { model: table, queryset: ofRequest } } }, async (request) => await app.realtime.list(request))
      }
    }
  })
  const wrong = wrongOf(db, table)
  const client = await connect()
  for (const [url, , described] of wrong) {
    const message = `fastify-rest-live: config.realtime.queryset of GET ${url} returned ${described}; it must return a Knex query builder on the route's table, like (request) => db('tasks').where(...)`
    for (const id of [url, `${url}-again`]) {
      t.same(await client.subscribe({ id, path: url }), { type: 'error', id, code: 500, message }, `${url}: the subscriber is told`)
    }
    t.equal(logs.filter((line) => line.msg === message).length, 1, `${url}: logged once`)
    const rest = await app.inject(url)
    t.equal(rest.statusCode, 500)
    t.equal(rest.json().message, message, `${url}: REST says the same`)
  }
})

t.test('a model that is not the table the queryset reads', async (t) => {
  const logs: LogLine[] = []
  const { app, tables: table, connect } = await appFixture(t, {
    logs,
    tables: tasksTable(),
    routes: (app, db, table) => {
      app.get('/tasks', { config: { realtime: { model: 'task', queryset: (request) => db(table).where('owner_id', request.query === null ? 0 : 1) } } }, async (request) => await app.realtime.list(request))
      // the same table, named as a query builder may name it: no mistake
      app.get('/aliased', { config: { realtime: { model: table, queryset: () => db({ t: table }) } } }, async (request) => await app.realtime.list(request))
      // a subquery has no table name to compare: the model is the user's word
      app.get('/sub', { config: { realtime: { model: table, queryset: () => db.from(db(table).as('s')) } } }, async (request) => await app.realtime.list(request))
    }
  })
  const message = `fastify-rest-live: GET /tasks has model 'task' but its queryset reads table '${table}', so writes to that table would never reach its subscribers; set model: '${table}'`
  const client = await connect()
  t.same(await client.subscribe({ id: 1, path: '/tasks' }), { type: 'error', id: 1, code: 500, message })
  t.same(await client.subscribe({ id: 2, path: '/tasks' }), { type: 'error', id: 2, code: 500, message })
  t.equal(logs.filter((line) => line.msg === message).length, 1, 'logged once')
  t.equal((await app.inject('/tasks')).json().message, message)
  t.match(await client.subscribe({ id: 3, path: '/aliased' }), { type: 'subscribed' })
  t.match(await client.subscribe({ id: 4, path: '/sub' }), { type: 'subscribed' })
})

t.test('a queryset that takes no request is checked at registration', async (t) => {
  const { db, table } = await database(t)

  async function declared (realtime: Record<string, unknown>): Promise<unknown> {
    const app = Fastify()
    t.teardown(async () => { await app.close() })
    await app.register(restLive, { knex: db })
    try {
      app.get('/tasks', { config: { realtime: realtime as never } }, async (request) => await app.realtime.list(request))
      await app.ready()
    } catch (err) {
      return err
    }
    return app
  }

  t.test('model defaults to the table it reads', async (t) => {
    const app = await declared({ queryset: () => db(table).where('done', false) }) as FastifyInstance
    await db(table).insert({ title: 'a', owner_id: 1 })
    const client = await TestClient.connect(app)
    t.teardown(() => { client.close() })
    t.match(await client.subscribe({ id: 1, model: table, action: 'list', snapshot: true }), { type: 'subscribed', data: [{ title: 'a' }] })
    await db(table).insert({ title: 'b', owner_id: 1 })
    await client.flush(app)
    t.match(client.broadcasts(1), [{ action: 'CREATED', instance: { title: 'b' } }], 'writes to the table reach it')
  })

  t.test('a model that is not its table is refused', async (t) => {
    t.match(await declared({ model: 'task', queryset: () => db(table) }), {
      code: 'FST_REST_LIVE_MODEL_MISMATCH',
      message: `fastify-rest-live: GET /tasks has model 'task' but its queryset reads table '${table}', so writes to that table would never reach its subscribers; set model: '${table}'`
    })
  })

  t.test('a result that is no query builder is refused', async (t) => {
    t.match(await declared({ queryset: () => [] }), {
      code: 'FST_REST_LIVE_INVALID_QUERYSET',
      message: /queryset of GET \/tasks returned an array/
    })
  })

  t.test('a subquery names no table: model is then needed', async (t) => {
    t.match(await declared({ queryset: () => db.from(db(table).as('s')) }), {
      code: 'FST_REST_LIVE_INVALID_ROUTE_CONFIG',
      message: /'model' is needed when the queryset takes the request .* or reads no named table/
    })
  })
})
