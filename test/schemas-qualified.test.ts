/**
 * A table in another schema is another model: a write to `audit.tasks` never
 * reaches `tasks` subscribers, and a route with `model: 'audit.tasks'` follows
 * exactly that table, however a write names it (qualified, `withSchema`,
 * aliased, quoted). Unqualified names are the default schema's (PostgreSQL:
 * Knex's searchPath, else public; SQLite: main).
 */
import t, { type Test } from 'tap'
import Fastify from 'fastify'
import type { Knex } from 'knex'
import { TableNames } from '../lib/capture/table-names.js'
import restLive from '../lib/index.js'
import { buildTasksApp, type LogLine } from './helpers/app.js'
import { DATABASE_URL, connect, createTasksTable, knex, postgresAvailable, uniqueName } from './helpers/db.js'
import { task, told } from './helpers/fixture.js'
import { TestClient } from './helpers/ws-client.js'

const hasPostgres = await postgresAvailable()
const noPostgres = hasPostgres ? false : 'no PostgreSQL'

interface Live {
  app: Awaited<ReturnType<typeof buildTasksApp>>['app']
  client: TestClient
  flush: () => Promise<void>
}

/** The tasks app following `model`, with user 1 subscribed to its list (id 'l') and to instance 1 (id 'one'). */
async function live (t: Test, db: Knex, model: string, logs?: LogLine[]): Promise<Live> {
  const { app } = await buildTasksApp({ db, table: model, ...(logs === undefined ? {} : { logs }) })
  const client = await TestClient.connect(app, { authorization: 'Bearer 1' })
  t.teardown(async () => {
    client.close()
    await app.close()
  })
  t.same(await client.subscribe({ id: 'l', model, action: 'list', snapshot: true }), { type: 'subscribed', id: 'l', data: [] })
  return { app, client, flush: async () => { await client.flush(app) } }
}

t.test('postgres: a table in another schema is another model', { skip: noPostgres }, async (t) => {
  const db = connect('postgres')
  const schema = uniqueName('audit')
  const table = uniqueName('tasks')
  const audited = `${schema}.${table}`
  await db.raw('create schema ??', [schema])
  await createTasksTable(db, table)
  await createTasksTable(db, audited)
  t.teardown(async () => {
    await db.raw('drop schema ?? cascade', [schema])
    await db.schema.dropTableIfExists(table)
    await db.destroy()
  })
  const plain = await live(t, db, table)
  const audit = await live(t, db, audited)
  await db(audited).insert({ title: 'audit a', owner_id: 1 }) // audit id 1
  await audit.flush()
  t.same(await audit.client.subscribe({ id: 'one', model: audited, action: 'retrieve', lookup_by: 1, snapshot: true }),
    { type: 'subscribed', id: 'one', data: task(1, 'audit a') }, 'a retrieve narrows by the qualified primary key')

  // one write at a time, so each is its own broadcast
  const step = async (write: Promise<unknown>): Promise<void> => {
    await write
    await plain.flush()
    await audit.flush()
  }
  await step(db(table).withSchema(schema).insert({ title: 'audit b', owner_id: 1 })) // audit id 2
  await step(db({ t: audited }).where('t.id', 1).update({ title: 'audit a2' }))
  await step(db(`${audited} as t`).where('t.id', 2).update({ done: true }))
  await step(db(`${audited} AS t`).where('t.id', 2).update({ title: 'audit b2' }))
  await step(db(table).insert({ title: 'public a', owner_id: 1 })) // public id 1
  await step(db(`public.${table}`).where({ id: 1 }).update({ title: 'public a2' }))
  await step(db(table).withSchema('public').insert({ title: 'public b', owner_id: 1 })) // public id 2

  t.same(told(plain.client, 'l'), [
    ['CREATED', task(1, 'public a')], ['UPDATED', task(1, 'public a2')], ['CREATED', task(2, 'public b')]
  ], 'tasks subscribers hear of public.tasks only')
  t.same(told(audit.client, 'l'), [
    ['CREATED', task(1, 'audit a')], ['CREATED', task(2, 'audit b')], ['UPDATED', task(1, 'audit a2')],
    ['UPDATED', task(2, 'audit b', 1, true)], ['UPDATED', task(2, 'audit b2', 1, true)]
  ], `${schema}.tasks subscribers hear of it however a write names it`)
  t.same(told(audit.client, 'one'), [['UPDATED', task(1, 'audit a2')]])

  await db(audited).where({ id: 1 }).del()
  await audit.flush()
  t.same(told(audit.client, 'one').slice(1), [['DELETED', { id: 1 }]])
  t.same(told(plain.client, 'l').length, 3)
})

t.test("postgres: unqualified names are Knex's searchPath schema's", { skip: noPostgres }, async (t) => {
  const admin = connect('postgres')
  const schema = uniqueName('app')
  const table = uniqueName('tasks')
  await admin.raw('create schema ??', [schema])
  await createTasksTable(admin, `${schema}.${table}`)
  await createTasksTable(admin, table) // a public table of the same name
  t.teardown(async () => {
    await admin.raw('drop schema ?? cascade', [schema])
    await admin.schema.dropTableIfExists(table)
    await admin.destroy()
  })

  const logs: LogLine[] = []
  const db = knex({ client: 'pg', connection: DATABASE_URL, searchPath: [schema, 'public'], pool: { min: 0, max: 2 } })
  t.teardown(async () => { await db.destroy() })
  const { client, flush } = await live(t, db, table, logs)
  await db(table).insert({ title: 'mine', owner_id: 1 }) // the searchPath schema's table
  await db(`${schema}.${table}`).insert({ title: 'mine too', owner_id: 1 })
  await db(`public.${table}`).insert({ title: 'public', owner_id: 1 })
  await flush()
  t.same(told(client, 'l'), [['CREATED', task(1, 'mine')], ['CREATED', task(2, 'mine too')]])
  t.same(logs, [], 'the connection agrees with the searchPath option')

  // a connection whose search_path Knex does not know about: unqualified names are taken as public's, and that is said
  const hidden: LogLine[] = []
  const elsewhere = knex({
    client: 'pg',
    connection: DATABASE_URL,
    pool: { min: 0, max: 1, afterCreate: (connection: { query: (sql: string, done: (err?: Error) => void) => void }, done: (err: Error | undefined, connection: unknown) => void) => { connection.query(`set search_path to "${schema}"`, (err) => { done(err, connection) }) } }
  })
  t.teardown(async () => { await elsewhere.destroy() })
  const { app } = await buildTasksApp({ db: elsewhere, table, logs: hidden })
  t.teardown(async () => { await app.close() })
  t.equal(hidden.length, 1)
  t.match(hidden[0], { level: 40, currentSchema: schema, assumed: 'public', msg: /unqualified table names resolve to schema '.*' on this connection, but are followed as tables of 'public' .*name tables with their schema/ })
})

t.test('sqlite: main is the default schema, an attached database another, and names ignore case', async (t) => {
  const db = knex({
    client: 'better-sqlite3',
    connection: { filename: ':memory:' },
    useNullAsDefault: true,
    pool: { afterCreate: (connection: { exec: (sql: string) => void }, done: (err: Error | null, connection: unknown) => void) => { connection.exec("attach database ':memory:' as aux"); done(null, connection) } }
  })
  const table = uniqueName('tasks')
  await createTasksTable(db, table)
  await createTasksTable(db, `aux.${table}`)
  t.teardown(async () => { await db.destroy() })
  const main = await live(t, db, table)
  const aux = await live(t, db, `AUX.${table}`)

  const step = async (write: Promise<unknown>): Promise<void> => {
    await write
    await main.flush()
    await aux.flush()
  }
  await step(db(`main.${table}`).insert({ title: 'main a', owner_id: 1 }))
  await step(db(table.toUpperCase()).where({ id: 1 }).update({ title: 'main A' }))
  await step(db(table).withSchema('MAIN').insert({ title: 'main b', owner_id: 1 }))
  await step(db(`aux.${table}`).insert({ title: 'aux a', owner_id: 1 }))
  await step(db(table).withSchema('aux').where({ id: 1 }).update({ done: true }))
  t.same(told(main.client, 'l'), [['CREATED', task(1, 'main a')], ['UPDATED', task(1, 'main A')], ['CREATED', task(2, 'main b')]])
  t.same(told(aux.client, 'l'), [['CREATED', task(1, 'aux a')], ['UPDATED', task(1, 'aux a', 1, true)]])
})

t.test('how names are read', async (t) => {
  const pg = TableNames.of({ dialect: 'postgresql' })
  t.equal(pg.ofString('"audit"."Tasks" as t'), 'audit.Tasks', 'quotes dropped, case kept')
  t.equal(pg.ofString('public.tasks'), 'tasks')
  t.equal(TableNames.of({ dialect: 'postgresql', searchPath: 'app' }).ofString('app.tasks'), 'tasks')
  t.equal(pg.ofBuilder({ table: { t: 'tasks', u: 'other' } }), undefined, 'several tables: not one write target')
  t.equal(pg.ofBuilder({ table: ['tasks'] }), undefined)
  t.equal(pg.ofBuilder({ table: 'a.b.c' }), undefined, 'not a table Knex can name')
  const other = TableNames.of({ dialect: 'mystery' })
  t.equal(other.ofString('public.tasks'), 'public.tasks', 'an unknown dialect has no default schema')
})

t.test('a model that names no table is refused at startup', async (t) => {
  const db = connect('sqlite')
  t.teardown(async () => { await db.destroy() })
  const app = Fastify({ logger: false })
  t.teardown(async () => { await app.close() })
  await app.register(restLive, { knex: db })
  t.throws(() => app.get('/x', { config: { realtime: { model: 'a.b.c' } } }, async () => []),
    { code: 'FST_REST_LIVE_INVALID_ROUTE_CONFIG', message: /'model' must name a table, optionally with its schema \('tasks', 'audit\.tasks'\), got 'a\.b\.c'/ })
  t.throws(() => app.get('/y', { config: { realtime: { model: 'audit.' } } }, async () => []), { code: 'FST_REST_LIVE_INVALID_ROUTE_CONFIG' })
})
