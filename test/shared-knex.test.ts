/**
 * One Knex instance, several registrations of the plugin (a public and an
 * admin socket in two encapsulated contexts, or two apps): they share one
 * capture, so writes run as they would without the plugin (one RETURNING at
 * most), each registration hears each committed change exactly once, every
 * registration's tables are captured, and the Knex client is restored when the
 * last registration closes.
 */
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Knex } from 'knex'
import websocket from '@fastify/websocket'
import restLive from '../lib/index.js'
import { buildTasksApp } from './helpers/app.js'
import { connect, createTasksTable, postgresAvailable, uniqueName, type Dialect } from './helpers/db.js'
import { TestClient, type Frame } from './helpers/ws-client.js'

const dialects: Dialect[] = ['sqlite']
if (await postgresAvailable()) dialects.push('postgres')
else t.comment('PostgreSQL is not reachable: running the SQLite half only')

async function database (t: Test, dialect: Dialect, ...tables: string[]): Promise<Knex> {
  const db = connect(dialect)
  for (const table of tables) await createTasksTable(db, table)
  t.teardown(async () => {
    for (const table of tables) await db.schema.dropTableIfExists(table)
    await db.destroy()
  })
  return db
}

const actions = (frames: Frame[]): string[] => frames.map((frame) => `${String(frame.model)} ${String(frame.action)} ${String((frame.instance as { title?: string }).title ?? (frame.instance as { id: number }).id)}`)

for (const dialect of dialects) {
  t.test(`${dialect}: a public and an admin socket on one Knex instance`, async (t) => {
    const tasks = uniqueName('tasks')
    const audit = uniqueName('audit')
    const db = await database(t, dialect, tasks, audit)
    const app = Fastify({ logger: false })
    t.teardown(async () => { await app.close() })
    // once, above both registrations: two would both answer each upgrade
    await app.register(websocket)
    const list = (table: string) => ({ config: { realtime: { model: table, queryset: () => db(table).orderBy('id') } } })
    let publicScope: FastifyInstance | undefined
    let adminScope: FastifyInstance | undefined
    await app.register(async (scope) => {
      await scope.register(restLive, { knex: db })
      scope.get('/tasks', list(tasks), async (request) => await scope.realtime.list(request))
      publicScope = scope
    })
    await app.register(async (scope) => {
      await scope.register(restLive, { knex: db, path: '/admin/ws' })
      scope.get('/admin/tasks', list(tasks), async (request) => await scope.realtime.list(request))
      scope.get('/admin/audit', list(audit), async (request) => await scope.realtime.list(request))
      adminScope = scope
    })
    await app.ready()

    const reader = await TestClient.connect(app)
    const admin = await TestClient.connect(app, {}, '/admin/ws')
    t.teardown(() => { reader.close(); admin.close() })
    await reader.subscribe({ id: 'tasks', model: tasks, action: 'list' })
    await admin.subscribe({ id: 'tasks', model: tasks, action: 'list' })
    await admin.subscribe({ id: 'audit', model: audit, action: 'list' })

    // writes without .returning() get Knex's own answer: the SQL carries one RETURNING, not two
    const statements: string[] = []
    db.on('query', (query: { sql: string }) => { statements.push(query.sql) })
    const step = async <T>(write: Promise<T>): Promise<T> => {
      const result = await write
      await reader.flush(publicScope as FastifyInstance)
      await admin.flush(adminScope as FastifyInstance)
      return result
    }
    const inserted = await step(db(tasks).insert({ title: 'a', owner_id: 1 }))
    if (dialect === 'sqlite') t.same(inserted, [1])
    else t.match(inserted, { command: 'INSERT', rowCount: 1, rows: [] })
    t.equal(await step(db(tasks).where({ id: 1 }).update({ title: 'a2' })), 1)
    await step(db.transaction(async (trx) => {
      await trx(audit).insert({ title: 'who did it', owner_id: 1 })
      await trx(tasks).insert({ title: 'b', owner_id: 1 })
    }))
    t.equal(await step(db(tasks).where({ id: 1 }).del()), 1)
    t.notOk(statements.some((sql) => /returning[\s\S]*returning/i.test(sql)), 'never RETURNING twice')

    const expected = [`${tasks} CREATED a`, `${tasks} UPDATED a2`, `${tasks} CREATED b`, `${tasks} DELETED 1`]
    t.same(actions(reader.broadcasts('tasks')), expected, 'each change once on the public socket')
    t.same(actions(admin.broadcasts('tasks')), expected, 'and once on the admin socket')
    t.same(actions(admin.broadcasts('audit')), [`${audit} CREATED who did it`], "the admin registration's own table is captured too")
    const events = (scope: FastifyInstance | undefined): number => (scope as FastifyInstance).realtime.stats().eventsReceived
    t.equal(events(publicScope), 4)
    t.equal(events(adminScope), 5, 'the same events, plus the audit one')
  })
}

t.test('the capture is shared until the last registration closes', async (t) => {
  const table = uniqueName('tasks')
  const db = await database(t, 'sqlite', table)
  const client = db.client as object
  const original = Object.getPrototypeOf(client) as object
  const first = await buildTasksApp({ db, table })
  const second = await buildTasksApp({ db, table })
  t.teardown(async () => { await first.app.close(); await second.app.close() })
  const watcher = await TestClient.connect(second.app, { authorization: 'Bearer 1' })
  t.teardown(() => { watcher.close() })
  await watcher.subscribe({ id: 1, model: table, action: 'list' })

  await first.app.close()
  t.not(Object.getPrototypeOf(client), original, 'still captured for the second app')
  t.same(await db(table).insert({ title: 'a', owner_id: 1 }), [1])
  await watcher.flush(second.app)
  t.same(watcher.broadcasts(1).map((frame) => frame.action), ['CREATED'])

  watcher.close()
  await second.app.close()
  t.equal(Object.getPrototypeOf(client), original, 'the Knex client is as it was')
  t.notOk(Object.getOwnPropertySymbols(client).includes(Symbol.for('fastify-rest-live.capture')), 'and holds no capture')
  const statements: string[] = []
  db.on('query', (query: { sql: string }) => { statements.push(query.sql) })
  t.same(await db(table).insert({ title: 'b', owner_id: 1 }), [2])
  t.notMatch(statements[0], /returning/i)

  // a new registration captures afresh
  const third = await buildTasksApp({ db, table })
  t.teardown(async () => { await third.app.close() })
  await db(table).insert({ title: 'c', owner_id: 1 })
  t.match(statements.at(-1), /returning \*/i)
})

t.test('another copy of the plugin on the same Knex instance is refused, saying what to do', async (t) => {
  const table = uniqueName('tasks')
  const db = await database(t, 'sqlite', table)
  Object.defineProperty(db.client, Symbol.for('fastify-rest-live.capture'), { value: { version: 'other' }, configurable: true })
  const app = Fastify({ logger: false })
  t.teardown(async () => { await app.close() })
  await t.rejects(async () => { await app.register(restLive, { knex: db }).ready() }, {
    code: 'FST_REST_LIVE_KNEX_CAPTURED_ELSEWHERE',
    message: /already captured by another copy of fastify-rest-live .*npm dedupe.*or give each copy its own Knex instance/
  })
})
