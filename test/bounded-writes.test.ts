/**
 * What a write holds and hands over: the whole row even when the caller asked
 * for some columns (so views decide in memory), and no rows at all past
 * `maxCapturedRows` (so a huge write costs a re-read, not memory). Every case
 * runs on SQLite and on PostgreSQL.
 */
import t, { type Test } from 'tap'
import type { Knex } from 'knex'
import { buildTasksApp } from './helpers/app.js'
import { connect, createTasksTable, postgresAvailable, uniqueName, type Dialect } from './helpers/db.js'
import { TestClient, type Frame } from './helpers/ws-client.js'

const dialects: Dialect[] = ['sqlite']
if (await postgresAvailable()) dialects.push('postgres')
else t.comment('PostgreSQL is not reachable: running the SQLite half only')

interface Fixture {
  app: Awaited<ReturnType<typeof buildTasksApp>>['app']
  db: Knex
  table: string
  client: TestClient
  /** Broadcasts so far on the list subscription, as "ACTION:id". */
  seen: () => string[]
}

async function fixture (t: Test, dialect: Dialect): Promise<Fixture> {
  const db = connect(dialect)
  const table = uniqueName('bounded')
  await createTasksTable(db, table)
  const { app } = await buildTasksApp({ db, table, })
  const client = await TestClient.connect(app, { authorization: 'Bearer 1' })
  t.teardown(async () => {
    client.close()
    await app.close()
    await db.schema.dropTableIfExists(table)
    await db.destroy()
  })
  t.same(await client.subscribe({ id: 'all', model: table, action: 'list' }), { type: 'subscribed', id: 'all' })
  const seen = (): string[] => client.broadcasts('all').map((frame: Frame) => `${String(frame.action)}:${String((frame.instance as { id: unknown }).id)}`)
  return { app, db, table, client, seen }
}

for (const dialect of dialects) {
  t.test(`${dialect}: a write returning some columns gives the caller those, and the views the whole row`, async (t) => {
    const { app, db, table, client, seen } = await fixture(t, dialect)
    const plain = connect(dialect)
    const plainTable = uniqueName('plain')
    await createTasksTable(plain, plainTable)
    t.teardown(async () => {
      await plain.schema.dropTableIfExists(plainTable)
      await plain.destroy()
    })
    const both = async (write: (db: Knex, table: string) => Promise<unknown>): Promise<unknown> => {
      const captured = await write(db, table)
      t.same(captured, await write(plain, plainTable), 'what Knex gives without the plugin')
      await client.flush(app)
      return captured
    }

    // the subscribe's own read
    const checks = app.realtime.stats().databaseChecks
    t.same(await both((db, table) => db(table).insert({ title: 'a', owner_id: 1 }).returning('id')), [{ id: 1 }])
    t.same(await both((db, table) => db(table).insert([{ title: 'b', owner_id: 1 }, { title: 'c', owner_id: 2 }], ['title', 'id'])),
      [{ title: 'b', id: 2 }, { title: 'c', id: 3 }])
    t.same(await both((db, table) => db(table).where({ id: 1 }).update({ title: 'a2' }).returning('id')), [{ id: 1 }])
    t.same(await both((db, table) => db(table).where({ id: 2 }).update({ done: true }).returning(['done'])),
      [{ done: dialect === 'sqlite' ? 1 : true }])
    t.same(await both((db, table) => db(table).insert({ id: 1, title: 'a3', owner_id: 1 }).onConflict('id').merge().returning('id')), [{ id: 1 }])
    if (dialect === 'postgres') t.same(await both((db, table) => db(table).where({ id: 2 }).del().returning('id')), [{ id: 2 }])
    t.same(Object.keys((await db(table).insert({ title: 'd', owner_id: 1 }).returning(['title', 'id']))[0] as object), ['title', 'id'],
      "the caller's columns, in its order")
    await client.flush(app)

    t.same(seen(), ['CREATED:1', 'CREATED:2', 'UPDATED:1', 'UPDATED:2', 'UPDATED:1', ...dialect === 'postgres' ? ['DELETED:2'] : [], 'CREATED:4'])
    t.same(client.broadcasts('all')[2]?.instance, { id: 1, title: 'a2', owner_id: 1, done: false })
    t.equal(app.realtime.stats().databaseChecks - checks, 0, 'every change was decided in memory')

    // a column that does not exist fails as it would without the plugin, and nothing is written
    await t.rejects(db(table).insert({ title: 'x', owner_id: 1 }).returning('nope'), /nope/)
    t.equal((await db(table).where({ title: 'x' })).length, 0)
  })
}
