/**
 * How a queryset view decides a changed row without the database, driven by a
 * clock the test sets: each branch of QuerysetView.readChanged is reached here
 * on purpose, never only when a write happens to race a read (which left
 * `npm test`'s coverage depending on timing).
 */
import type { RouteOptions } from 'fastify'
import type { Knex } from 'knex'
import t from 'tap'
import { CommitClock, type ReadClock } from '../lib/capture/commit-clock.js'
import { TableSchemas } from '../lib/matcher/schema.js'
import { RouteRegistry, type RealtimeRoute } from '../lib/registry/route-registry.js'
import type { ChangedRow } from '../lib/subscriptions/model-queue.js'
import { QuerysetView } from '../lib/subscriptions/view.js'
import type { Row } from '../lib/types.js'
import { buildTasksApp } from './helpers/app.js'
import { createTasksTable, sqlite, uniqueName } from './helpers/db.js'
import { TestClient } from './helpers/ws-client.js'

const db = sqlite()
const table = uniqueName('tasks')
await createTasksTable(db, table)
t.teardown(async () => { await db.destroy() })
await db(table).insert([
  { id: 1, title: 'mine', owner_id: 1 },
  { id: 2, title: 'theirs', owner_id: 2 },
  { id: 4, title: 'mine, changed elsewhere', owner_id: 1 }
])

function route (url: string): RealtimeRoute {
  const registry = new RouteRegistry()
  registry.add({ method: 'GET', url, config: { realtime: { model: table, queryset: () => db(table) } }, handler: async () => [] } as unknown as RouteOptions, { getSchemas: () => ({}) })
  return registry.byUrl(url) as RealtimeRoute
}

/** A clock that moves only when the test says. */
class TestClock implements ReadClock {
  now = 10
  current (): number {
    return this.now
  }
}

const schemas = new TableSchemas()
const serialize = (row: Row): string => `${String(row.id)}:${String(row.title)}`
// a whole row as the driver returns it (SQLite gives booleans as 0/1)
const shape = await db(table).where({ id: 1 }).first() as Row
const full = (id: number, title: string, owner: number): Row => ({ ...shape, id, title, owner_id: owner })

function view (builder: Knex.QueryBuilder, url: string, clock: ReadClock, lookupKey?: string): { view: QuerysetView, queries: () => number } {
  let queries = 0
  return { view: new QuerysetView(url, route(url), builder, serialize, lookupKey, { countQuery: () => { queries++ }, clock, schemas }), queries: () => queries }
}

function changes (entries: Array<[string, ChangedRow]>): Map<string, ChangedRow> {
  return new Map(entries)
}

t.test('a list view: fresh captures are decided in memory, anything else is re-read', async (t) => {
  const clock = new TestClock()
  const { view: list, queries } = view(db(table).where('owner_id', 1).orderBy('id'), '/tasks', clock)
  t.same([...(await list.readAll()).keys()], ['1', '4'], 'read at 10')
  t.equal(queries(), 1)

  const reading = await list.readChanged(changes([
    ['1', { pk: 1, row: full(1, 'mine, renamed', 1), deleted: false, trustedSince: 11 }], // fresh, in the view
    ['2', { pk: 2, row: full(2, 'theirs', 2), deleted: false, trustedSince: 11 }], // fresh, not in it
    ['3', { pk: 3, row: full(3, 'gone', 1), deleted: true, trustedSince: 11 }], // a fresh delete
    ['4', { pk: 4, row: full(4, 'stale', 1), deleted: false, trustedSince: 9 }], // captured before the read: not the newest
    ['5', { pk: 5, row: full(5, 'elsewhere', 1), deleted: false }], // from another node or publish()
    ['6', { pk: 6, row: undefined, deleted: false, trustedSince: 11 }], // no row carried
    ['7', { pk: 7, row: { id: 7, owner_id: 1 }, deleted: false, trustedSince: 11 }], // not a whole row
    ['8', { pk: 8, row: full(8, 'gone', 1), deleted: true, trustedSince: 9 }] // a delete older than the read: the key may be back
  ]))
  t.same([...(reading?.rows ?? new Map()).entries()], [['4', '4:mine, changed elsewhere'], ['1', '1:mine, renamed']], 'the database says 4; memory says 1')
  t.same(reading?.examined, ['1', '2', '3', '4', '5', '6', '7', '8'])
  t.equal(queries(), 2, 'one query for the undecided keys')

  clock.now = 20
  const decided = await list.readChanged(changes([['2', { pk: 2, row: full(2, 'theirs', 2), deleted: false, trustedSince: 21 }]]))
  t.same([...(decided?.rows ?? new Map()).keys()], [], 'decided without the database')
  t.equal(queries(), 2)

  // the re-read moved the view's read mark to 20: a capture stamped 15 is no longer fresh
  await list.readChanged(changes([['5', { pk: 5, row: undefined, deleted: false }]]))
  t.equal(queries(), 3)
  await list.readChanged(changes([['1', { pk: 1, row: full(1, 'mine', 1), deleted: false, trustedSince: 15 }]]))
  t.equal(queries(), 4, 'stamped before the last read: re-read')
})

t.test('a view whose queryset does not compile always asks the database', async (t) => {
  const clock = new TestClock()
  const { view: raw, queries } = view(db(table).whereRaw('owner_id = ?', [1]), '/raw', clock)
  await raw.readAll()
  const reading = await raw.readChanged(changes([['1', { pk: 1, row: full(1, 'mine', 1), deleted: false, trustedSince: 11 }]]))
  t.same([...(reading?.rows ?? new Map()).keys()], ['1'])
  t.equal(queries(), 2)
})

t.test('a retrieve view', async (t) => {
  const clock = new TestClock()
  const { view: one, queries } = view(db(table).where('owner_id', 1).where(`${table}.id`, 1), '/tasks/:id', clock, '1')
  await one.readAll()
  t.equal(await one.readChanged(changes([['2', { pk: 2, row: full(2, 'x', 1), deleted: false, trustedSince: 11 }]])), undefined, 'another row is not its news')
  const updated = await one.readChanged(changes([['1', { pk: 1, row: full(1, 'renamed', 1), deleted: false, trustedSince: 11 }]]))
  t.same([...(updated?.rows ?? new Map()).entries()], [['1', '1:renamed']], 'fresh: decided in memory')
  const moved = await one.readChanged(changes([['1', { pk: 1, row: full(1, 'given away', 2), deleted: false, trustedSince: 11 }]]))
  t.same([...(moved?.rows ?? new Map()).keys()], [], 'fresh and out of the queryset: gone')
  const deleted = await one.readChanged(changes([['1', { pk: 1, row: full(1, 'mine', 1), deleted: true, trustedSince: 11 }]]))
  t.same([...(deleted?.rows ?? new Map()).keys()], [], 'a fresh delete: gone')
  t.equal(queries(), 1, 'none of these asked the database')
  const stale = await one.readChanged(changes([['1', { pk: 1, row: full(1, 'old', 1), deleted: false, trustedSince: 3 }]]))
  t.same([...(stale?.rows ?? new Map()).entries()], [['1', '1:mine']], 'not fresh: the whole view is re-read')
  t.same(stale?.examined, ['1'])
  t.equal(queries(), 2)
})

t.test("the capture clock trusts a commit's rows only when no commit of the table overlapped it", async (t) => {
  const clock = new CommitClock()
  // two commits of one table in flight at once: sent 1 and 2, answered 4 and 3
  const first = { sentAt: clock.tick(), receivedAt: 0 }
  const second = { sentAt: clock.tick(), receivedAt: clock.tick() }
  first.receivedAt = clock.tick()
  t.equal(clock.commit(table, second), 2, 'the first answered raced nothing answered before it')
  t.equal(clock.commit(table, first), undefined, 'sent before the other was answered: its rows may be older, so they are re-read')
  t.equal(clock.commit('other', first), 1, 'another table is not raced')
  const later = { sentAt: clock.tick(), receivedAt: clock.tick() }
  t.equal(clock.commit(table, later), 5, 'sent after every earlier answer: trusted')
})

t.test('a trusted capture is matched in memory and its trust mark reaches no frame', async (t) => {
  const own = sqlite()
  const name = uniqueName('tasks')
  await createTasksTable(own, name)
  const { app } = await buildTasksApp({ db: own, table: name })
  const client = await TestClient.connect(app, { authorization: 'Bearer 1' })
  t.teardown(async () => {
    client.close()
    await app.close()
    await own.destroy()
  })
  await client.subscribe({ id: 'mine', model: name, action: 'list', snapshot: true })
  const checks = app.realtime.stats().databaseChecks
  await own(name).insert({ title: 'captured here', owner_id: 1 })
  const created = await client.next((frame) => frame.type === 'broadcast')
  t.match(created, { action: 'CREATED', instance: { title: 'captured here' } })
  t.equal(app.realtime.stats().databaseChecks, checks, 'trusted: decided without the database')
  t.notMatch(JSON.stringify(client.frames), /trustedSince/, 'no frame carries it')
})
