/**
 * `config.realtime.lookup` is Django REST framework's `lookup_field`: it names
 * the column a retrieve searches (and the URL parameter). REST and the
 * subscription find the row by that column; the subscription then follows the
 * row by primary key, so a rename of the lookup column is an UPDATED and a
 * delete a DELETED. A database error never reaches a client.
 */
import type { FastifyInstance } from 'fastify'
import type { Knex } from 'knex'
import t, { type Test } from 'tap'
import type { LogLine } from './helpers/app.js'
import { postgresAvailable, type Dialect } from './helpers/db.js'
import { appFixture } from './helpers/fixture.js'
import type { TestClient } from './helpers/ws-client.js'

interface TodosApp { app: FastifyInstance, db: Knex, table: string, logs: LogLine[], connect: () => Promise<TestClient> }

async function todosApp (t: Test, dialect: Dialect): Promise<TodosApp> {
  const logs: LogLine[] = []
  const { app, db, tables: table, connect } = await appFixture(t, {
    dialect,
    logs,
    tables: async (db, name) => {
      const table = name('todos')
      await db.schema.createTable(table, (columns) => {
        columns.increments('id').primary()
        columns.string('text').notNullable().unique()
      })
      return table
    },
    routes: (app, db, table) => {
      const realtime = { model: table, queryset: () => db(table) }
      app.get('/todos', { config: { realtime } }, async (request) => await app.realtime.list(request))
      app.get('/todos/:text', { config: { realtime: { ...realtime, lookup: 'text' } } }, async (request) => await app.realtime.retrieve(request))
      // a queryset the database refuses (an unknown column): its error must not reach the client
      app.get('/broken/:text', { config: { realtime: { model: table, lookup: 'text', queryset: () => db(table).where('no_such_column', 1) } } }, async (request) => await app.realtime.retrieve(request))
    }
  })
  return { app, db, table, logs, connect: async () => await connect() }
}

const dialects: Dialect[] = ['sqlite']
if (await postgresAvailable()) dialects.push('postgres')
else t.comment('PostgreSQL is not reachable: running the SQLite half only')

for (const dialect of dialects) {
  t.test(dialect, async (t) => {
    t.test('REST retrieves by the lookup column and names it in a 404', async (t) => {
      const { app, db, table } = await todosApp(t, dialect)
      await db(table).insert([{ text: 'milk' }, { text: 'eggs' }])
      const found = await app.inject('/todos/eggs')
      t.equal(found.statusCode, 200)
      t.same(found.json(), { id: 2, text: 'eggs' })
      const missing = await app.inject('/todos/bread')
      t.equal(missing.statusCode, 404)
      t.equal(missing.json().message, `No ${table} instance with text bread`)
    })

    t.test('a database error is logged, never sent', async (t) => {
      const { app, logs } = await todosApp(t, dialect)
      const response = await app.inject('/broken/milk')
      t.equal(response.statusCode, 500)
      t.equal(response.json().code, 'FST_REST_LIVE_QUERY_FAILED')
      t.equal(response.json().message, 'fastify-rest-live: the query of GET /broken/:text failed; the server log has the cause')
      t.notMatch(response.body, /select|no_such_column/i, 'no SQL in the body')
      t.ok(logs.some((line) => JSON.stringify(line.err).includes('no_such_column')), 'the cause is in the log')
    })

    t.test('a subscription matches on the lookup column, then follows the row by pk', async (t) => {
      const { app, db, table, connect } = await todosApp(t, dialect)
      await db(table).insert([{ text: 'milk' }, { text: 'eggs' }])
      const alice = await connect()
      const bob = await connect()

      t.same(await alice.subscribe({ id: 1, path: '/todos/milk', snapshot: true }), { type: 'subscribed', id: 1, data: { id: 1, text: 'milk' } })
      t.same(await bob.subscribe({ id: 1, path: '/todos/milk' }), { type: 'subscribed', id: 1 })
      const missing = await alice.subscribe({ id: 2, path: '/todos/bread' })
      t.same(missing, { type: 'error', id: 2, code: 404, message: `No ${table} instance with text bread` }, 'the 404 names the column, as REST')

      await db(table).where({ id: 1 }).update({ text: 'oat milk' })
      await alice.flush(app)
      t.same(alice.broadcasts(1).map((frame) => [frame.action, frame.instance]), [['UPDATED', { id: 1, text: 'oat milk' }]], 'a rename is an UPDATED')
      await bob.flush(app)
      t.equal(bob.broadcasts(1).length, 1, 'both subscribers of the shared view hear it')

      // after the rename, the old value finds nothing, as REST says: the view is not joined by its old text
      t.equal((await app.inject('/todos/milk')).statusCode, 404)
      t.same(await bob.subscribe({ id: 3, path: '/todos/milk' }), { type: 'error', id: 3, code: 404, message: `No ${table} instance with text milk` })
      // the new value finds the same row, and shares the view that follows it
      t.same(await bob.subscribe({ id: 4, path: '/todos/oat%20milk', snapshot: true }), { type: 'subscribed', id: 4, data: { id: 1, text: 'oat milk' } })
      t.equal(app.realtime.stats().subscriptions, 3)

      await db(table).where({ id: 2 }).update({ text: 'brown eggs' })
      await db(table).where({ id: 1 }).del()
      await alice.flush(app)
      await bob.flush(app)
      t.same(alice.broadcasts(1).map((frame) => frame.action), ['UPDATED', 'DELETED'], 'another row is not news; the delete is')
      t.same(bob.broadcasts(4).map((frame) => [frame.action, frame.instance]), [['DELETED', { id: 1 }]])
    })

    t.test('a subscription whose query fails gets a 500 without SQL', async (t) => {
      const { db, table, connect } = await todosApp(t, dialect)
      await db(table).insert({ text: 'milk' })
      const client = await connect()
      const broken = await client.subscribe({ id: 2, path: '/broken/milk' })
      t.match(broken, { type: 'error', id: 2, code: 500 })
      t.notMatch(String(broken.message), /no_such_column/, 'no SQL in the frame either')
    })
  })
}
