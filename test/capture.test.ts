/**
 * Capture of Knex writes: what is broadcast, when (only after COMMIT), and that
 * the caller still gets exactly what Knex would have answered. Every case runs
 * on SQLite and on PostgreSQL.
 */
import t, { type Test } from 'tap'
import type { Knex } from 'knex'
import { KnexCapture, type CommittedWrite } from '../lib/capture/knex-capture.js'
import { buildTasksApp } from './helpers/app.js'
import { tasksFixture } from './helpers/fixture.js'
import { connect, createTasksTable, postgresAvailable, sqlite, uniqueName, type Dialect } from './helpers/db.js'
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

/** A tasks app on `dialect`, and user 1 subscribed to their list. */
async function fixture (t: Test, dialect: Dialect): Promise<Fixture> {
  const { app, db, table, user } = await tasksFixture(t, { dialect, prefix: 'cap' })
  const client = await user(1)
  t.same(await client.subscribe({ id: 'all', model: table, action: 'list' }), { type: 'subscribed', id: 'all' })
  const seen = (): string[] => client.broadcasts('all').map((frame: Frame) => `${String(frame.action)}:${String((frame.instance as { id: unknown }).id)}`)
  return { app, db, table, client, seen }
}

/** What a caller can rely on in a write's result; drops pg's per-connection metadata. */
function observable (result: unknown): unknown {
  if (result !== null && typeof result === 'object' && !Array.isArray(result) && 'command' in result) {
    const { command, rowCount, rows } = result as { command: unknown, rowCount: unknown, rows: unknown }
    return { command, rowCount, rows }
  }
  return result
}

for (const dialect of dialects) {
  t.test(`${dialect}: writes outside a transaction are broadcast once they ran`, async (t) => {
    const { app, db, table, client, seen } = await fixture(t, dialect)
    await db(table).insert({ title: 'a', owner_id: 1 })
    await client.flush(app)
    t.same(seen(), ['CREATED:1'])
    t.same(client.broadcasts('all')[0], {
      type: 'broadcast', id: 'all', model: table, action: 'CREATED', instance: { id: 1, title: 'a', owner_id: 1, done: false }
    })
    await db(table).where({ id: 1 }).update({ title: 'b' })
    await client.flush(app)
    t.same(client.broadcasts('all')[1]?.instance, { id: 1, title: 'b', owner_id: 1, done: false })
    await db(table).where({ id: 1 }).del()
    await client.flush(app)
    t.same(seen(), ['CREATED:1', 'UPDATED:1', 'DELETED:1'])
    t.same(client.broadcasts('all')[2]?.instance, { id: 1 })
  })

  t.test(`${dialect}: a multi-row insert is one CREATED per row`, async (t) => {
    const { app, db, table, client, seen } = await fixture(t, dialect)
    await db(table).insert([{ title: 'a', owner_id: 1 }, { title: 'b', owner_id: 1 }, { title: 'c', owner_id: 2 }])
    await client.flush(app)
    t.same(seen().sort(), ['CREATED:1', 'CREATED:2'], "user 2's row is not in user 1's view")
    await db(table).update({ done: true })
    await client.flush(app)
    t.same(seen().slice(2).sort(), ['UPDATED:1', 'UPDATED:2'])
  })

  t.test(`${dialect}: a write that matches no row broadcasts nothing`, async (t) => {
    const { app, db, table, client, seen } = await fixture(t, dialect)
    t.equal(await db(table).where({ id: 42 }).update({ title: 'x' }), 0)
    t.equal(await db(table).where({ id: 42 }).del(), 0)
    await client.flush(app)
    t.same(seen(), [])
  })

  t.test(`${dialect}: nothing from a transaction is broadcast before it commits`, async (t) => {
    const { app, db, table, client, seen } = await fixture(t, dialect)
    await db(table).insert({ title: 'before', owner_id: 1 })
    await client.flush(app)
    t.same(seen(), ['CREATED:1'])
    await db.transaction(async (trx) => {
      await trx(table).insert({ title: 'a', owner_id: 1 })
      await trx(table).where({ id: 1 }).update({ title: 'changed' })
      await trx(table).insert({ title: 'b', owner_id: 1 })
      await trx(table).where({ id: 3 }).del()
      await client.flush(app)
      t.same(seen(), ['CREATED:1'], 'nothing while the transaction is open')
    })
    await client.flush(app)
    t.same(seen().slice(1).sort(), ['CREATED:2', 'UPDATED:1'], 'after commit: the net effect (row 3 came and went)')
    t.same(client.broadcasts('all')[2]?.instance, { id: 1, title: 'changed', owner_id: 1, done: false })
  })

  t.test(`${dialect}: a transaction handled by hand (commit)`, async (t) => {
    const { app, db, table, client, seen } = await fixture(t, dialect)
    const trx = await db.transaction()
    await trx(table).insert({ title: 'a', owner_id: 1 })
    await client.flush(app)
    t.same(seen(), [])
    await trx.commit()
    await client.flush(app)
    t.same(seen(), ['CREATED:1'])
  })

  t.test(`${dialect}: a rolled-back transaction broadcasts nothing`, async (t) => {
    const { app, db, table, client, seen } = await fixture(t, dialect)
    await db(table).insert({ title: 'kept', owner_id: 1 })
    await client.flush(app)

    await t.rejects(db.transaction(async (trx) => {
      await trx(table).insert({ title: 'a', owner_id: 1 })
      await trx(table).where({ id: 1 }).update({ title: 'gone' })
      throw new Error('boom')
    }), { message: 'boom' })

    await db.transaction(async (trx) => {
      await trx(table).insert({ title: 'b', owner_id: 1 })
      await trx(table).where({ id: 1 }).del()
      await trx.rollback()
    }).catch(() => {})

    const manual = await db.transaction()
    await manual(table).insert({ title: 'c', owner_id: 1 })
    await manual.rollback().catch(() => {})

    await client.flush(app)
    t.same(seen(), ['CREATED:1'])
    t.same(await db(table).select('id', 'title'), [{ id: 1, title: 'kept' }])

    // the connections are clean afterwards: the next write is broadcast at once
    await db(table).insert({ title: 'after', owner_id: 1 })
    await client.flush(app)
    t.same(seen().slice(1), [`CREATED:${dialect === 'sqlite' ? 2 : 5}`])
  })

  t.test(`${dialect}: a failing statement inside a transaction rolls it all back`, async (t) => {
    const { app, db, table, client, seen } = await fixture(t, dialect)
    await t.rejects(db.transaction(async (trx) => {
      await trx(table).insert({ title: 'a', owner_id: 1 })
      await trx(table).insert({ title: null, owner_id: 1 }) // title is NOT NULL
    }))
    await client.flush(app)
    t.same(seen(), [])
    t.same(await db(table).count({ n: '*' }), [{ n: dialect === 'sqlite' ? 0 : '0' }])
  })

  t.test(`${dialect}: nested transactions (savepoints)`, async (t) => {
    t.test('inner rolled back: only its writes are dropped', async (t) => {
      const { app, db, table, client, seen } = await fixture(t, dialect)
      await db.transaction(async (trx) => {
        await trx(table).insert({ title: 'outer', owner_id: 1 })
        await t.rejects(trx.transaction(async (inner) => {
          await inner(table).insert({ title: 'inner', owner_id: 1 })
          await inner(table).where({ id: 1 }).update({ title: 'inner touched' })
          throw new Error('inner fails')
        }), { message: 'inner fails' })
        await trx.transaction(async (inner) => {
          await inner(table).insert({ title: 'inner 2', owner_id: 1 })
          await inner.rollback()
        }).catch(() => {})
        await trx(table).insert({ title: 'outer again', owner_id: 1 })
        await client.flush(app)
        t.same(seen(), [])
      })
      await client.flush(app)
      // ids differ by dialect here (a rolled-back savepoint gives SQLite its ids back, not PostgreSQL its sequence)
      t.same(client.broadcasts('all').map((frame) => [frame.action, (frame.instance as { title: string }).title]), [['CREATED', 'outer'], ['CREATED', 'outer again']])
    })

    t.test('inner committed, outer rolled back: nothing', async (t) => {
      const { app, db, table, client, seen } = await fixture(t, dialect)
      await t.rejects(db.transaction(async (trx) => {
        await trx(table).insert({ title: 'outer', owner_id: 1 })
        await trx.transaction(async (inner) => {
          await inner(table).insert({ title: 'inner', owner_id: 1 })
        })
        await client.flush(app)
        t.same(seen(), [], 'a committed savepoint is not a commit')
        throw new Error('outer fails')
      }))
      await client.flush(app)
      t.same(seen(), [])
    })

    t.test('inner committed, outer committed: everything', async (t) => {
      const { app, db, table, client, seen } = await fixture(t, dialect)
      await db.transaction(async (trx) => {
        await trx(table).insert({ title: 'outer', owner_id: 1 })
        await trx.transaction(async (inner) => {
          await inner(table).insert({ title: 'inner', owner_id: 1 })
          await inner.transaction(async (innermost) => {
            await innermost(table).where({ id: 1 }).update({ done: true })
          })
        })
        await trx(table).insert({ title: 'outer again', owner_id: 1 })
        await client.flush(app)
        t.same(seen(), [])
      })
      await client.flush(app)
      t.same(seen().sort(), ['CREATED:1', 'CREATED:2', 'CREATED:3'])
      t.same(client.broadcasts('all').find((frame) => (frame.instance as { id: number }).id === 1)?.instance, { id: 1, title: 'outer', owner_id: 1, done: true })
    })
  })

  t.test(`${dialect}: savepoints driven by raw statements inside a transaction`, async (t) => {
    const { app, db, table, client, seen } = await fixture(t, dialect)
    const titles = (): string[] => client.broadcasts('all').map((frame) => (frame.instance as { title: string }).title)
    await db.transaction(async (trx) => {
      await trx(table).insert({ title: 'A', owner_id: 1 })
      await trx.raw('savepoint s1')
      await trx(table).insert({ title: 'B', owner_id: 1 })
      await trx.raw('rollback to savepoint s1')
      await trx(table).insert({ title: 'C', owner_id: 1 })
      // the savepoint outlives its rollback: rolling back to it again drops C, not A
      await trx.raw('rollback to savepoint s1')
      await trx(table).insert({ title: 'D', owner_id: 1 })
      await trx.raw('release savepoint s1')
      await trx.raw('savepoint s2')
      await trx(table).insert({ title: 'E', owner_id: 1 })
      await trx.raw('rollback transaction to savepoint s2')
      await trx(table).insert({ title: 'F', owner_id: 1 })
      await client.flush(app)
      t.same(seen(), [], 'ROLLBACK TRANSACTION TO does not end the transaction')
    })
    await client.flush(app)
    t.same(titles().sort(), ['A', 'D', 'F'])
    t.same((await db(table).select('title').orderBy('title')).map((row: { title: string }) => row.title), ['A', 'D', 'F'])
  })

  t.test(`${dialect}: callers get Knex's own results`, async (t) => {
    const { app, db, table, client, seen } = await fixture(t, dialect)
    // the same statements on a Knex instance without the plugin
    const plain = connect(dialect)
    const plainTable = uniqueName('plain')
    await createTasksTable(plain, plainTable)
    t.teardown(async () => {
      await plain.schema.dropTableIfExists(plainTable)
      await plain.destroy()
    })
    const both = async (write: (db: Knex, table: string) => Promise<unknown>): Promise<unknown> => {
      const captured = observable(await write(db, table))
      t.same(captured, observable(await write(plain, plainTable)))
      await client.flush(app) // one write at a time, so the broadcasts below are in a known order
      return captured
    }

    const inserted = await both((db, table) => db(table).insert({ title: 'a', owner_id: 1 }))
    if (dialect === 'sqlite') t.same(inserted, [1], 'insert without returning gives [id]')
    else t.same(inserted, { command: 'INSERT', rowCount: 1, rows: [] }, 'insert without returning gives the driver result')
    t.same(await both((db, table) => db(table).insert([{ title: 'b', owner_id: 1 }, { title: 'c', owner_id: 1 }])),
      dialect === 'sqlite' ? [3] : { command: 'INSERT', rowCount: 2, rows: [] })
    t.same(await both((db, table) => db(table).insert({ title: 'd', owner_id: 1 }).returning('id')), [{ id: 4 }])
    t.same(await both((db, table) => db(table).insert({ title: 'e', owner_id: 1 }, ['id', 'title'])), [{ id: 5, title: 'e' }])
    const star = await both((db, table) => db(table).insert({ title: 'f', owner_id: 1 }).returning('*'))
    t.match(star, [{ id: 6, title: 'f', owner_id: 1, secret: 'hunter2' }])
    t.equal(await both((db, table) => db(table).where('id', '<', 3).update({ done: true })), 2, 'update gives a count')
    t.same(await both((db, table) => db(table).where({ id: 3 }).update({ title: 'c2' }).returning('id')), [{ id: 3 }])
    t.same(await both((db, table) => db(table).where({ id: 4 }).update({ title: 'd2' }).returning(['title'])), [{ title: 'd2' }])
    t.equal(await both((db, table) => db(table).where({ id: 1 }).del()), 1, 'del gives a count')
    const deleted = await both((db, table) => db(table).where({ id: 2 }).del().returning('*'))
    if (dialect === 'sqlite') t.equal(deleted, 1, "SQLite's Knex ignores returning on delete: a count")
    else t.match(deleted, [{ id: 2, title: 'b' }])
    t.same(await both((db, table) => db(table).where({ id: 3 }).del(['id'])), dialect === 'sqlite' ? 1 : [{ id: 3 }])
    t.same(await both(async (db, table) => await db.transaction(async (trx) => await trx(table).insert({ title: 'g', owner_id: 1 }))),
      dialect === 'sqlite' ? [7] : { command: 'INSERT', rowCount: 1, rows: [] })
    t.same(await db(table).select('id', 'title').orderBy('id'), await plain(plainTable).select('id', 'title').orderBy('id'))

    t.same(seen(), [
      'CREATED:1', 'CREATED:2', 'CREATED:3', 'CREATED:4', 'CREATED:5', 'CREATED:6',
      'UPDATED:1', 'UPDATED:2', 'UPDATED:3',
      'UPDATED:4', // its returning('title') has no primary key, but the capture reads the whole row
      'DELETED:1', 'DELETED:2', 'DELETED:3', 'CREATED:7'
    ])
  })

  t.test(`${dialect}: writes to tables no realtime route follows are left alone`, async (t) => {
    const { app, db, table, client, seen } = await fixture(t, dialect)
    const other = uniqueName('untracked')
    await createTasksTable(db, other)
    t.teardown(async () => { await db.schema.dropTableIfExists(other) })
    const statements: string[] = []
    db.on('query', (query: { sql: string }) => { statements.push(query.sql) })
    const result = observable(await db(other).insert({ title: 'a', owner_id: 1 }))
    t.same(result, dialect === 'sqlite' ? [1] : { command: 'INSERT', rowCount: 1, rows: [] })
    await db(other).update({ title: 'b' })
    await db(other).del()
    t.equal(statements.length, 3)
    t.notOk(statements.some((sql) => /returning/i.test(sql)), 'the SQL runs as written')
    await db(table).insert({ title: 'tracked', owner_id: 1 })
    t.match(statements[3], /returning \*/i, 'while a tracked table gets RETURNING *')
    await client.flush(app)
    t.same(seen(), ['CREATED:1'])
  })

  t.test(`${dialect}: a table named with its schema or an alias is still the same table`, async (t) => {
    const { app, db, table, client, seen } = await fixture(t, dialect)
    const schema = dialect === 'sqlite' ? 'main' : 'public'
    await db(`${schema}.${table}`).insert({ title: 'a', owner_id: 1 })
    await client.flush(app)
    await db(`${table} as t`).where('t.id', 1).update({ title: 'b' })
    await client.flush(app)
    t.same(seen(), ['CREATED:1', 'UPDATED:1'])
    t.same(client.broadcasts('all')[1]?.instance, { id: 1, title: 'b', owner_id: 1, done: false })
    // a table given as raw SQL has no name to follow: the write runs untouched and unseen
    t.equal(await db(db.raw('??', [table])).where({ id: 1 }).update({ title: 'c' }), 1)
    await client.flush(app)
    t.same(seen(), ['CREATED:1', 'UPDATED:1'])
  })

  t.test(`${dialect}: TRUNCATE empties live views`, async (t) => {
    const { app, db, table, client, seen } = await fixture(t, dialect)
    await db(table).insert([{ title: 'a', owner_id: 1 }, { title: 'b', owner_id: 1 }])
    await client.flush(app)
    await db(table).truncate() // takes no RETURNING: the views are re-read
    await client.flush(app)
    t.same(seen(), ['CREATED:1', 'CREATED:2', 'DELETED:1', 'DELETED:2'])
  })

  t.test(`${dialect}: raw SQL is not captured; app.realtime.publish is`, async (t) => {
    const { app, db, table, client, seen } = await fixture(t, dialect)
    await db.raw(`insert into ${table} (title, owner_id) values (?, ?)`, ['raw', 1])
    await client.flush(app)
    t.same(seen(), [], 'raw SQL carries no table: not captured')

    const [row] = await db(table).where({ id: 1 }).select('*')
    await app.realtime.publish(table, 'insert', [row])
    await client.flush(app)
    t.same(client.broadcasts('all'), [{ type: 'broadcast', id: 'all', model: table, action: 'CREATED', instance: { id: 1, title: 'raw', owner_id: 1, done: false } }])

    await db.raw(`update ${table} set title = 'raw 2' where id = 1`)
    await app.realtime.publish(table, 'update', [{ id: 1 }])
    await client.flush(app)
    await db.raw(`delete from ${table} where id = 1`)
    await app.realtime.publish(table, 'delete', [{ id: 1 }])
    await app.realtime.publish(table, 'delete', [])
    await client.flush(app)
    t.same(seen(), ['CREATED:1', 'UPDATED:1', 'DELETED:1'])
  })

  t.test(`${dialect}: app.realtime.publish rejects what it cannot deliver`, async (t) => {
    const { app, table } = await fixture(t, dialect)
    const code = 'FST_REST_LIVE_INVALID_PUBLISH'
    await t.rejects(app.realtime.publish(table, 'upsert' as 'insert', [{ id: 1 }]), { code, message: /op must be 'insert', 'update' or 'delete', got "upsert"/ })
    await t.rejects(app.realtime.publish(table, 'insert', [{ id: 1 }, { title: 'no id' }]), { code, message: /rows\[1\] has no primary key 'id'/ })
    await t.rejects(app.realtime.publish(table, 'insert', [null as unknown as { id: number }]), { code, message: /rows\[0\]/ })
    await t.rejects(app.realtime.publish(table, 'insert', { id: 1 } as unknown as Array<{ id: number }>), { code, message: /rows must be an array/ })
    await t.rejects(app.realtime.publish('', 'insert', [{ id: 1 }]), { code, message: /model must be a table name/ })
  })
}

t.test('postgres: a transaction whose COMMIT fails broadcasts nothing', { skip: dialects.includes('postgres') ? false : 'no PostgreSQL' }, async (t) => {
  const { app, db, table, client, seen } = await fixture(t, 'postgres')
  await db.raw(`alter table ${table} add constraint ${table}_title unique (title) deferrable initially deferred`)
  await t.rejects(db.transaction(async (trx) => {
    await trx(table).insert({ title: 'same', owner_id: 1 })
    await trx(table).insert({ title: 'same', owner_id: 1 })
  }))
  await client.flush(app)
  t.same(seen(), [])
  await db(table).insert({ title: 'other', owner_id: 1 })
  await client.flush(app)
  t.same(seen(), ['CREATED:3'])
})

t.test('sqlite: a transaction opened by a raw SAVEPOINT commits on its RELEASE', async (t) => {
  // SQLite's pool has one connection, so raw statements share it
  const { app, db, table, client, seen } = await fixture(t, 'sqlite')
  await db.raw('savepoint outer_sp')
  await db(table).insert({ title: 'a', owner_id: 1 })
  await db.raw('savepoint inner_sp')
  await db(table).insert({ title: 'b', owner_id: 1 })
  await db.raw('rollback to inner_sp')
  await db.raw('release inner_sp')
  await client.flush(app)
  t.same(seen(), [])
  await db.raw('release outer_sp')
  await client.flush(app)
  t.same(seen(), ['CREATED:1'])
  await db.raw('begin')
  await db(table).insert({ title: 'c', owner_id: 1 })
  await db.raw('end')
  await db.raw('begin immediate')
  await db(table).insert({ title: 'd', owner_id: 1 })
  await db.raw('rollback')
  await client.flush(app)
  t.same(seen(), ['CREATED:1', 'CREATED:2'])
})

t.test('a dialect without RETURNING still broadcasts (the view is re-read)', async (t) => {
  // a Knex client the capture does not know: it cannot ask for the written rows
  const base = sqlite()
  const Base = base.client.constructor as new (config: Knex.Config) => Knex.Client
  await base.destroy()
  class Mystery extends Base {}
  Object.defineProperty(Mystery.prototype, 'dialect', { value: 'mystery' })
  const knexModule = await import('knex')
  const db = knexModule.default({ client: Mystery as unknown as typeof Knex.Client, connection: { filename: ':memory:' }, useNullAsDefault: true })
  const table = uniqueName('mystery')
  await createTasksTable(db, table)
  const { app } = await buildTasksApp({ db, table })
  const client = await TestClient.connect(app, { authorization: 'Bearer 1' })
  t.teardown(async () => { client.close(); await app.close(); await db.destroy() })
  await client.subscribe({ id: 1, model: table, action: 'list' })
  t.same(await db(table).insert({ title: 'a', owner_id: 1 }), [1])
  t.equal(await db(table).update({ title: 'b' }), 1)
  await client.flush(app)
  t.same(client.broadcasts(1).map((frame) => frame.action), ['CREATED'])
  t.same(client.broadcasts(1)[0]?.instance, { id: 1, title: 'b', owner_id: 1, done: false })
  t.equal(await db(table).del(), 1)
  await client.flush(app)
  t.same(client.broadcasts(1).map((frame) => frame.action), ['CREATED', 'DELETED'])
})

for (const dialect of dialects) {
  t.test(`${dialect}: a 20,000-row transaction of many statements is captured whole, as one write`, async (t) => {
    const db = connect(dialect)
    const table = uniqueName('long')
    await createTasksTable(db, table)
    const capture = KnexCapture.of(db)
    const committed: CommittedWrite[][] = []
    const detach = capture.attach({ maxCapturedRows: Infinity, interest: (write) => write.table === table ? 'rows' : undefined, committed: (writes) => { committed.push(writes) } })
    t.teardown(async () => {
      detach()
      await db.schema.dropTableIfExists(table)
      await db.destroy()
    })
    const batch = (from: number): Array<{ title: string, owner_id: number }> => Array.from({ length: 40 }, (_, n) => ({ title: `t${from + n}`, owner_id: 1 }))
    await db.transaction(async (trx) => {
      for (let i = 0; i < 250; i++) await trx(table).insert(batch(i * 40))
      // half of it inside a savepoint that is released: its writes move to the transaction
      await trx.transaction(async (inner) => {
        for (let i = 250; i < 500; i++) await inner(table).insert(batch(i * 40))
      })
    })
    t.equal(committed.length, 1, 'one commit')
    const writes = committed[0] ?? []
    t.equal(writes.length, 1, 'its 500 inserts merged into one write')
    const titles = (writes[0]?.rows ?? []).map((row) => row.title)
    t.equal(titles.length, 20_000, 'every row')
    t.same(titles, Array.from({ length: 20_000 }, (_, n) => `t${n}`), 'in commit order')
  })
}
