/**
 * Savepoints are followed by name, as the database follows them: a ROLLBACK TO
 * an outer savepoint undoes every level above it, a RELEASE releases the
 * savepoints above it too, names follow each dialect's case rules, and the
 * statements that end a transaction are read for what the database did
 * (PostgreSQL's COMMIT of an aborted transaction is a ROLLBACK; SQLite keeps a
 * transaction open when its COMMIT fails). Every case runs on SQLite and on
 * PostgreSQL, with raw statements and with Knex's nested transactions.
 */
import t, { type Test } from 'tap'
import type { Knex } from 'knex'
import { TransactionLog, classifyStatement, type CapturedWrite } from '../lib/capture/transaction-log.js'
import { postgresAvailable, type Dialect } from './helpers/db.js'
import { tasksFixture, type Fixture } from './helpers/fixture.js'
import type { TestClient } from './helpers/ws-client.js'

const dialects: Dialect[] = ['sqlite']
if (await postgresAvailable()) dialects.push('postgres')
else t.comment('PostgreSQL is not reachable: running the SQLite half only')

interface Subscribed extends Fixture {
  client: TestClient
  /** Titles broadcast so far as CREATED, sorted. */
  created: () => Promise<string[]>
  insert: (db: Knex | Knex.Transaction, title: string) => Promise<void>
}

async function subscribed (t: Test, dialect: Dialect): Promise<Subscribed> {
  const fixture = await tasksFixture(t, { dialect, prefix: 'sp' })
  const client = await fixture.user(1)
  await client.subscribe({ id: 'all', model: fixture.table, action: 'list' })
  let ids = 0
  return {
    ...fixture,
    client,
    created: async () => {
      await fixture.flush()
      return client.broadcasts('all').filter((frame) => frame.action === 'CREATED').map((frame) => (frame.instance as { title: string }).title).sort()
    },
    // explicit ids: SQLite hands a rolled-back insert's id to the next one, which would hide a kept row behind the row that reused its id
    insert: async (db, title) => { await db(fixture.table).insert({ id: ++ids, title, owner_id: 1 }) }
  }
}

/** The titles the table holds: what the broadcasts must agree with. */
async function stored (db: Knex, table: string): Promise<string[]> {
  return (await db(table).select('title').orderBy('title')).map((row: { title: string }) => row.title)
}

for (const dialect of dialects) {
  t.test(`${dialect}: ROLLBACK TO an outer savepoint undoes the writes of every level above it`, async (t) => {
    const { db, table, created, insert } = await subscribed(t, dialect)
    await db.transaction(async (trx) => {
      await trx.raw('savepoint a')
      await insert(trx, 'X')
      await trx.raw('savepoint b')
      await insert(trx, 'Y')
      await trx.raw('rollback to savepoint a')
      await insert(trx, 'Z')
      // `a` survives its rollback: rolling back to it again drops only what came after
      await trx.raw('savepoint c')
      await insert(trx, 'W')
      await trx.raw('rollback to a')
      await insert(trx, 'V')
      t.same(await created(), [], 'nothing before COMMIT')
    })
    t.same(await created(), ['V'])
    t.same(await stored(db, table), ['V'])
  })

  t.test(`${dialect}: RELEASE releases the savepoints above it too`, async (t) => {
    const { db, table, created, insert } = await subscribed(t, dialect)
    await db.transaction(async (trx) => {
      await trx.raw('savepoint outer_sp')
      await insert(trx, 'Q')
      await trx.raw('savepoint a')
      await insert(trx, 'R')
      await trx.raw('savepoint b')
      await insert(trx, 'S')
      // releases b with a: their writes now belong to outer_sp's level …
      await trx.raw('release a')
      // … so rolling back to outer_sp undoes Q, R and S
      await trx.raw('rollback to savepoint outer_sp')
      await insert(trx, 'T')
      await trx.raw('savepoint d')
      await insert(trx, 'U')
      await trx.raw('release savepoint outer_sp')
      await insert(trx, 'V')
    })
    t.same(await created(), ['T', 'U', 'V'])
    t.same(await stored(db, table), ['T', 'U', 'V'])
  })

  t.test(`${dialect}: a name repeated on the stack is its innermost savepoint`, async (t) => {
    const { db, table, created, insert } = await subscribed(t, dialect)
    await db.transaction(async (trx) => {
      await trx.raw('savepoint a')
      await insert(trx, '1')
      await trx.raw('savepoint a')
      await insert(trx, '2')
      await trx.raw('rollback to a') // the inner a: drops 2
      await insert(trx, '3')
      await trx.raw('release a') // the inner a: 3 joins the outer a
      await trx.raw('rollback to a') // the outer a: drops 1 and 3
      await insert(trx, '4')
    })
    t.same(await created(), ['4'])
    t.same(await stored(db, table), ['4'])
  })

  t.test(`${dialect}: savepoint names follow the dialect's case rules`, async (t) => {
    const { db, table, created, insert } = await subscribed(t, dialect)
    await db.transaction(async (trx) => {
      await trx.raw('savepoint Mixed') // PostgreSQL folds it to mixed; SQLite ignores case
      await insert(trx, 'A')
      await trx.raw('savepoint "MIXED"') // PostgreSQL keeps the case of a quoted name
      await insert(trx, 'B')
      // PostgreSQL: the first savepoint (mixed), dropping A and B; SQLite: the innermost of the two, dropping B
      await trx.raw('rollback to MiXeD')
      await insert(trx, 'C')
    })
    const expected = dialect === 'postgres' ? ['C'] : ['A', 'C']
    t.same(await created(), expected)
    t.same(await stored(db, table), expected)
  })

  t.test(`${dialect}: Knex's nested transactions among raw savepoints`, async (t) => {
    const { db, table, created, insert } = await subscribed(t, dialect)
    await db.transaction(async (trx) => {
      await trx.raw('savepoint before_inner')
      // Knex names its savepoints `trx<n>` (SAVEPOINT trx5; … RELEASE SAVEPOINT trx5;)
      await trx.transaction(async (inner) => {
        await insert(inner, 'released, then rolled back')
        await inner.transaction(async (innermost) => { await insert(innermost, 'innermost') })
      })
      await trx.raw('rollback to savepoint before_inner')
      await insert(trx, 'outer')
      await trx.transaction(async (inner) => {
        await insert(inner, 'rolled back by Knex')
        await inner.rollback()
      }).catch(() => {})
      // Knex leaves its rolled-back savepoint on the stack: this write sits above it, and is kept
      await insert(trx, 'after')
      await trx.raw('release before_inner')
    })
    t.same(await created(), ['after', 'outer'])
    t.same(await stored(db, table), ['after', 'outer'])
  })
}

t.test('sqlite: a SAVEPOINT outside a transaction starts one, and its RELEASE commits it', async (t) => {
  // SQLite's pool has one connection, so raw statements share it
  const { db, table, created, insert } = await subscribed(t, 'sqlite')
  await db.raw('savepoint t')
  await insert(db, 'A')
  await db.raw('savepoint u')
  await insert(db, 'B')
  t.same(await created(), [])
  await db.raw('release t') // releases u too, and commits
  t.same(await created(), ['A', 'B'])

  await db.raw('savepoint t2')
  await insert(db, 'C')
  await db.raw('rollback to t2') // undoes C; the transaction stays open
  await insert(db, 'D')
  t.same(await created(), ['A', 'B'], 'still in the transaction')
  await db.raw('release t2')
  t.same(await created(), ['A', 'B', 'D'])
  t.same(await stored(db, table), ['A', 'B', 'D'])
})

t.test('sqlite: a COMMIT that fails leaves the transaction open', async (t) => {
  const { db, table, created, insert } = await subscribed(t, 'sqlite')
  await db.raw('pragma foreign_keys = on')
  await db.raw(`create table ${table}_p (id integer primary key)`)
  await db.raw(`create table ${table}_c (id integer primary key, p integer references ${table}_p (id) deferrable initially deferred)`)
  t.teardown(async () => {
    await db.raw(`drop table if exists ${table}_c`)
    await db.raw(`drop table if exists ${table}_p`)
  })
  const orphan = async (): Promise<void> => { await db.raw(`insert into ${table}_c (p) values (99)`) }

  await db.raw('begin')
  await insert(db, 'A')
  await orphan()
  await t.rejects(db.raw('commit'), { message: /FOREIGN KEY constraint failed/ })
  await insert(db, 'B') // still inside the transaction
  t.same(await created(), [])
  await db.raw('rollback')
  t.same(await created(), [], 'the rollback undid A and B')

  await db.raw('begin')
  await insert(db, 'C')
  await orphan()
  await t.rejects(db.raw('commit'))
  await insert(db, 'D')
  await db.raw(`delete from ${table}_c`)
  await db.raw('commit')
  t.same(await created(), ['C', 'D'])
  t.same(await stored(db, table), ['C', 'D'])
})

t.test('postgres: transaction endings are read for what the database did', { skip: dialects.includes('postgres') ? false : 'no PostgreSQL' }, async (t) => {
  const { db, table, created, insert } = await subscribed(t, 'postgres')

  // a failed statement aborts the transaction: PostgreSQL answers its COMMIT with ROLLBACK
  const aborted = await db.transaction()
  await insert(aborted, 'aborted')
  await t.rejects(aborted(table).insert({ title: null, owner_id: 1 }))
  const answer = await aborted.commit() as unknown as { response: { command: string } }
  t.equal(answer.response.command, 'ROLLBACK')
  t.same(await created(), [])

  // a BEGIN inside a transaction is a warning, not a new transaction
  await db.transaction(async (trx) => {
    await insert(trx, 'before begin')
    await trx.raw('begin')
    await insert(trx, 'after begin')
  })
  t.same(await created(), ['after begin', 'before begin'])

  // COMMIT AND CHAIN commits and opens the next transaction at once
  const chained = await db.transaction()
  await insert(chained, 'committed')
  await chained.raw('commit and chain')
  await insert(chained, 'chained, rolled back')
  t.same(await created(), ['after begin', 'before begin', 'committed'])
  await chained.rollback()
  t.same(await created(), ['after begin', 'before begin', 'committed'])
  t.same(await stored(db, table), ['after begin', 'before begin', 'committed'])
})

t.test('statement names, as each database reads them', async (t) => {
  const name = (sql: string, dialect: 'postgresql' | 'sqlite' | 'other'): unknown => classifyStatement(sql, dialect)
  t.same(name('SAVEPOINT trx12;', 'postgresql'), { kind: 'savepoint', name: 'trx12' }, "Knex's own")
  t.same(name('  release Savepoint "A""b" ; ', 'postgresql'), { kind: 'release', name: 'A"b' })
  t.same(name('RELEASE savepoint', 'postgresql'), { kind: 'release', name: 'savepoint' }, 'SAVEPOINT is optional, and a name')
  t.same(name('rollback work to savepoint ÄBC', 'postgresql'), { kind: 'rollbackTo', name: 'Äbc' }, 'only ASCII folds')
  t.same(name(`savepoint ${'x'.repeat(70)}`, 'postgresql'), { kind: 'savepoint', name: 'x'.repeat(63) }, 'cut at 63 bytes')
  t.same(name(`savepoint "${'é'.repeat(40)}"`, 'postgresql'), { kind: 'savepoint', name: 'é'.repeat(31) }, 'on a character boundary')
  t.same(name('savepoint `Ab``c`', 'sqlite'), { kind: 'savepoint', name: 'ab`c' })
  t.same(name('rollback transaction to [Sp 1]', 'sqlite'), { kind: 'rollbackTo', name: 'sp 1' })
  t.same(name("release 'It''s'", 'sqlite'), { kind: 'release', name: "it's" })
  t.same(name('savepoint Keep', 'other'), { kind: 'savepoint', name: 'Keep' })
  t.same(name('savepoint a; select 1', 'postgresql'), { kind: 'savepoint', name: undefined }, 'a name that cannot be read')
  t.same(name('commit and chain', 'postgresql'), { kind: 'commit', chain: true })
  t.same(name('ROLLBACK AND NO CHAIN', 'postgresql'), { kind: 'rollback', chain: false })
  t.same(name('start transaction', 'postgresql'), { kind: 'begin' })
  t.equal(name('select 1', 'postgresql'), undefined)
})

t.test('a savepoint the log cannot name: what its transaction wrote is re-read once it commits', async (t) => {
  const published: CapturedWrite[][] = []
  const log = new TransactionLog((writes) => { published.push(writes) })
  const connection = {}
  const window = { sentAt: 1, receivedAt: 2 }
  const write = (table: string, op: CapturedWrite['op']): CapturedWrite => ({ table, op, rows: [{ id: 1 }], columns: null, updates: op === 'update' })
  const run = (sql: string): void => { log.apply(connection, classifyStatement(sql, 'postgresql') as NonNullable<ReturnType<typeof classifyStatement>>, window) }

  run('begin')
  log.record(connection, write('tasks', 'insert'), window)
  run('savepoint a; select 1') // seen as a savepoint of unknown name
  log.record(connection, write('tasks', 'insert'), window)
  log.record(connection, write('tasks', 'update'), window)
  log.record(connection, write('projects', 'delete'), window)
  run('release a') // a name the log does not hold: the writes stay where they are
  run('release b; select 1') // a name it cannot read: the same
  run('rollback to savepoint a')
  t.same(published, [], 'still open')
  run('commit')
  t.same(published, [[
    { table: 'tasks', op: 'insert', rows: null, columns: null, updates: false },
    { table: 'tasks', op: 'update', rows: null, columns: null, updates: true },
    { table: 'projects', op: 'delete', rows: null, columns: null, updates: false }
  ]])
})
