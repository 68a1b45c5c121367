/**
 * Rows whose primary key is NULL (SQLite's `id serial primary key` stays NULL)
 * are never merged into one row: they are left out of live views, subscribing
 * to a view that holds one is refused, and the table is reported once, at
 * error level, with the routes and the fix.
 */
import t from 'tap'
import type { Knex } from 'knex'
import { authenticateByBearer, tasksRoutes, type LogLine } from './helpers/app.js'
import { postgresAvailable, type Dialect } from './helpers/db.js'
import { appFixture, task, told } from './helpers/fixture.js'

const dialects: Dialect[] = ['sqlite']
if (await postgresAvailable()) dialects.push('postgres')
else t.comment('PostgreSQL is not reachable: running the SQLite half only')

/** A tasks table whose `id` can be NULL: SQLite's `serial` is not filled in; in PostgreSQL, a column without a constraint. */
function unkeyedTable (dialect: Dialect): (db: Knex, name: (base: string) => string) => Promise<string> {
  return async (db, name) => {
    const table = name('nopk')
    const id = dialect === 'sqlite' ? 'id serial primary key' : 'id integer'
    await db.raw(`create table ${table} (${id}, title text not null, owner_id integer not null, done boolean not null default false, secret text not null default 'hunter2')`)
    return table
  }
}

const reports = (logs: LogLine[]): LogLine[] => logs.filter((line) => line.msg.includes('NULL primary key'))

for (const dialect of dialects) {
  t.test(`${dialect}: rows without a primary key are reported once and never merged`, async (t) => {
    const logs: LogLine[] = []
    const { app, db, tables: table, connect } = await appFixture(t, {
      dialect,
      logs,
      tables: unkeyedTable(dialect),
      before: authenticateByBearer,
      routes: (app, db, table) => { tasksRoutes(app, { db, table }) }
    })
    const early = await connect({ authorization: 'Bearer 1' })
    const late = await connect({ authorization: 'Bearer 1' })
    t.same(await early.subscribe({ id: 'l', model: table, action: 'list', snapshot: true }), { type: 'subscribed', id: 'l', data: [] })

    await db(table).insert({ title: 'a', owner_id: 1 })
    await db(table).insert([{ title: 'b', owner_id: 1 }, { title: 'c', owner_id: 1 }])
    await early.flush(app)
    t.same(told(early, 'l'), [], 'no row without a key reaches a subscriber, and none replaces another')

    const [report] = reports(logs)
    t.equal(reports(logs).length, 1, 'reported once')
    t.match(report, {
      level: 50,
      model: table,
      pk: 'id',
      routes: ['GET /tasks', 'GET /tasks/:id'],
      msg: new RegExp(`table '${table}' has rows written with a NULL primary key 'id'.*Routes GET /tasks, GET /tasks/:id leave such rows out of live views`)
    })
    t.match(report?.msg, dialect === 'sqlite' ? /in SQLite, declare it 'id integer primary key' \(a 'id serial' column is never filled in and stays NULL\)/ : /'id serial primary key'/)

    // a view holding such rows cannot be followed honestly: the subscription is refused
    t.same(await late.subscribe({ id: 'l', model: table, action: 'list' }), {
      type: 'error', id: 'l', code: 500, message: `model '${table}' has rows whose primary key 'id' is NULL, so they cannot be followed live; the server log says how to fix the table`
    })
    t.equal(reports(logs).length, 1, 'still reported once')

    // rows with a key are followed as ever
    await db(table).insert({ id: 10, title: 'keyed', owner_id: 1 })
    await early.flush(app)
    t.same(told(early, 'l'), [['CREATED', task(10, 'keyed')]])
    t.match(await late.subscribe({ id: 'one', model: table, action: 'retrieve', lookup_by: 10, snapshot: true }), { type: 'subscribed', data: task(10, 'keyed') })
    await db(table).update({ done: true })
    await early.flush(app)
    await late.flush(app)
    t.same(told(early, 'l').slice(1), [['UPDATED', task(10, 'keyed', 1, true)]])
    t.same(told(late, 'one'), [['UPDATED', task(10, 'keyed', 1, true)]])

    await t.rejects(app.realtime.publish(table, 'update', [{ id: null }]), { code: 'FST_REST_LIVE_INVALID_PUBLISH', message: /rows\[0\] has no primary key 'id'/ })
  })
}

t.test('a route re-run for its subscribers (no queryset) refuses such a view too', async (t) => {
  const logs: LogLine[] = []
  const { app, db, tables: table, connect } = await appFixture(t, {
    logs,
    tables: unkeyedTable('sqlite'),
    // no response schema: the REST answer carries the NULL (an integer schema would print 0 for every row)
    routes: (app, db, table) => { app.get('/items', { config: { realtime: { model: table } } }, async () => await db(table).select('id', 'title').orderBy('title')) }
  })
  const client = await connect()
  await db(table).insert({ id: 1, title: 'keyed', owner_id: 1 })
  t.same(await client.subscribe({ id: 1, model: table, action: 'list', snapshot: true }), { type: 'subscribed', id: 1, data: [{ id: 1, title: 'keyed' }] })

  await db(table).insert({ title: 'unkeyed', owner_id: 1 })
  await db(table).where({ id: 1 }).update({ title: 'keyed 2' })
  await client.flush(app)
  t.same(told(client, 1), [['UPDATED', { id: 1, title: 'keyed 2' }]], 'the subscriber keeps the rows it can tell apart')
  t.match(await client.subscribe({ id: 2, model: table, action: 'list' }), { type: 'error', code: 500, message: /has rows whose primary key 'id' is NULL/ })
  t.equal(reports(logs).length, 1)
  t.match(reports(logs)[0]?.msg, new RegExp(`table '${table}' has rows (written|read) with a NULL primary key 'id'`))
})
