/**
 * The matcher: simple filters are decided in memory (no database query per
 * change), anything else falls back to the batched database check, and either
 * way subscribers get exactly what REST would say.
 */
import Fastify from 'fastify'
import type { Knex } from 'knex'
import t, { type Test } from 'tap'
import restLive from '../lib/index.js'
import { compareCodePoints, compileQueryset, compileWith, likeMatch } from '../lib/matcher/evaluator.js'
import { TableSchemas, dialectOf, sqliteAffinity, type ColumnInfo, type CompareMode, type Dialect as SchemaDialect } from '../lib/matcher/schema.js'
import { ViewIndex } from '../lib/matcher/view-index.js'
import type { RealtimeRoute } from '../lib/registry/route-registry.js'
import type { ChangedRow } from '../lib/subscriptions/model-queue.js'
import { QuerysetView, type ViewSource } from '../lib/subscriptions/view.js'
import type { Row } from '../lib/types.js'
import { buildTasksApp } from './helpers/app.js'
import { connect, createTasksTable, postgresAvailable, sqlite, uniqueName, type Dialect } from './helpers/db.js'
import { TestClient } from './helpers/ws-client.js'
import { CommitClock } from '../lib/capture/commit-clock.js'

const dialects: Dialect[] = ['sqlite']
/** The table schemas compiling reads with, as one registration's views share theirs. */
const schemas = new TableSchemas()
if (await postgresAvailable()) dialects.push('postgres')

async function tasksDb (t: Test, dialect: Dialect): Promise<{ db: Knex, table: string }> {
  const db = connect(dialect)
  const table = uniqueName('tasks')
  await createTasksTable(db, table)
  t.teardown(async () => {
    await db.schema.dropTableIfExists(table)
    await db.destroy()
  })
  return { db, table }
}

for (const dialect of dialects) {
  t.test(`${dialect}: simple filters cost no database query per change`, async (t) => {
    const { db, table } = await tasksDb(t, dialect)
    const { app } = await buildTasksApp({ db, table })
    t.teardown(async () => { await app.close() })
    const one = await TestClient.connect(app, { authorization: 'Bearer 1' })
    const two = await TestClient.connect(app, { authorization: 'Bearer 2' })
    t.teardown(() => { one.close(); two.close() })
    await one.subscribe({ id: 'all', model: table, action: 'list' })
    await one.subscribe({ id: 'done', model: table, action: 'list', query_params: { done: true } })
    await two.subscribe({ id: 'all', model: table, action: 'list' })
    const checks = app.realtime.stats().databaseChecks
    const flush = async (): Promise<void> => { await one.flush(app); await two.flush(app) }

    const [inserted] = await db(table).insert({ title: 'a', owner_id: 1 }).returning('*') as Row[]
    const id = (inserted as Row).id as number
    await flush()
    await db(table).where({ id }).update({ done: true })
    await flush()
    await db(table).where({ id }).update({ owner_id: 2 })
    await flush()
    await db(table).where({ id }).del()
    await flush()
    t.equal(app.realtime.stats().databaseChecks - checks, 0, 'no database query for any of these changes')

    const task = (owner: number, done: boolean): Row => ({ id, title: 'a', owner_id: owner, done })
    const told = (client: TestClient, sub: string): unknown[] => client.broadcasts(sub).map((frame) => [frame.action, frame.instance])
    t.same(told(one, 'all'), [['CREATED', task(1, false)], ['UPDATED', task(1, true)], ['DELETED', { id }]], 'serialized by the route schema (no secret)')
    t.same(told(one, 'done'), [['CREATED', task(1, true)], ['DELETED', { id }]], 'the done filter, with SQLite 0/1 booleans')
    t.same(told(two, 'all'), [['CREATED', task(2, true)], ['DELETED', { id }]])
  })

  t.test(`${dialect}: a retrieve subscription is decided in memory`, async (t) => {
    const { db, table } = await tasksDb(t, dialect)
    const { app } = await buildTasksApp({ db, table })
    t.teardown(async () => { await app.close() })
    const [row] = await db(table).insert([{ title: 'a', owner_id: 1 }, { title: 'b', owner_id: 1 }]).returning('*') as Row[]
    const id = (row as Row).id as number
    const client = await TestClient.connect(app, { authorization: 'Bearer 1' })
    t.teardown(() => { client.close() })
    await client.subscribe({ id: 'one', model: table, action: 'retrieve', lookup_by: id })
    const checks = app.realtime.stats().databaseChecks
    await db(table).where({ id }).update({ title: 'a2' })
    await db(table).where({ id: id + 1 }).update({ title: 'b2' })
    await client.flush(app)
    await db(table).where({ id }).update({ owner_id: 3 })
    await client.flush(app)
    t.equal(app.realtime.stats().databaseChecks - checks, 0)
    t.same(client.broadcasts('one').map((frame) => frame.action), ['UPDATED', 'DELETED'], 'updated, then gone when access is lost')
  })
}

t.test('what the evaluator cannot decide goes to the database, batched', async (t) => {
  const { db, table } = await tasksDb(t, 'sqlite')
  const { app } = await buildTasksApp({ db, table })
  t.teardown(async () => { await app.close() })
  const client = await TestClient.connect(app, { authorization: 'Bearer 1' })
  t.teardown(() => { client.close() })
  await client.subscribe({ id: 'all', model: table, action: 'list' })
  await db(table).insert({ title: 'a', owner_id: 1 })
  await client.subscribe({ id: 'one', model: table, action: 'retrieve', lookup_by: 1 })
  await client.flush(app)
  const checks = app.realtime.stats().databaseChecks
  // a row announced with its primary key only
  await db.raw(`update ${table} set title = 'raw' where id = 1`)
  await app.realtime.publish(table, 'update', [{ id: 1 }])
  await client.flush(app)
  t.equal(app.realtime.stats().databaseChecks - checks, 2, 'one query per view for a partial row')
  // a row whose values are not what the driver gives (SQLite has no booleans)
  await app.realtime.publish(table, 'update', [{ id: 1, title: 'raw', owner_id: 1, done: true, secret: 'hunter2' }])
  await client.flush(app)
  t.equal(app.realtime.stats().databaseChecks - checks, 4, 'one query per view for a row of the wrong shape')
  // rows announced by publish() are re-read (whoever sent them may be behind): one query per view covers the batch
  const [whole] = await db(table).insert({ title: 'b', owner_id: 1 }).returning('*') as Row[]
  await client.flush(app)
  await db.raw(`update ${table} set title = 'raw2' where id = 1`)
  await db.raw(`update ${table} set title = 'b2' where id = ${String(whole?.id)}`)
  await app.realtime.publish(table, 'update', [{ ...whole, title: 'b2' }, { id: 1 }, { id: 99 }])
  await client.flush(app)
  t.equal(app.realtime.stats().databaseChecks - checks, 6)
  t.same(client.broadcasts('all').map((frame) => [frame.action, (frame.instance as Row).title]), [['CREATED', 'a'], ['UPDATED', 'raw'], ['CREATED', 'b'], ['UPDATED', 'b2'], ['UPDATED', 'raw2']])
  t.same(client.broadcasts('one').map((frame) => [frame.action, (frame.instance as Row).title]), [['UPDATED', 'raw'], ['UPDATED', 'raw2']])
})

t.test('querysets the evaluator cannot reproduce: one database check per change and view', async (t) => {
  const db = sqlite()
  const table = uniqueName('tasks')
  const owners = uniqueName('owners')
  await createTasksTable(db, table)
  await db.schema.createTable(owners, (tb) => { tb.integer('id').primary(); tb.string('name') })
  await db(owners).insert([{ id: 1, name: 'ann' }, { id: 2, name: 'bob' }])
  const app = Fastify()
  await app.register(restLive, { knex: db })
  // raw SQL: the evaluator does not read it (a `like` is decided in memory now)
  app.get('/like', { config: { realtime: { model: table, queryset: () => db(table).whereRaw("title like 'a%'") } } }, async () => [])
  app.get('/like/:id', { config: { realtime: { model: table, queryset: () => db(table).whereRaw("title like 'a%'") } } }, async () => ({}))
  app.get('/join', {
    config: {
      realtime: {
        model: table,
        queryset: () => db(table).join(owners, `${owners}.id`, `${table}.owner_id`).where(`${owners}.name`, 'ann').select(`${table}.*`)
      }
    }
  }, async () => [])
  await app.ready()
  t.teardown(async () => { await app.close(); await db.destroy() })
  const client = await TestClient.connect(app)
  t.teardown(() => { client.close() })
  await client.subscribe({ id: 'like', path: '/like' })
  await client.subscribe({ id: 'join', path: '/join' })
  await db(table).insert({ title: 'apple', owner_id: 1 })
  await client.subscribe({ id: 'like1', path: '/like/1' })
  await db(table).where({ id: 1 }).del()
  await client.flush(app)
  client.frames.length = 0
  const checks = app.realtime.stats().databaseChecks
  await db(table).insert({ title: 'apple', owner_id: 1 })
  await client.flush(app)
  t.equal(app.realtime.stats().databaseChecks - checks, 2, 'one query per view')
  await db.transaction(async (trx) => {
    await trx(table).insert({ title: 'avocado', owner_id: 2 })
    await trx(table).insert({ title: 'banana', owner_id: 1 })
    await trx(table).where({ id: 2 }).update({ title: 'apricot' })
  })
  await client.flush(app)
  t.equal(app.realtime.stats().databaseChecks - checks, 4, 'a burst: still one query per view')
  await db(table).where({ id: 2 }).del()
  await client.flush(app)
  t.equal(app.realtime.stats().databaseChecks - checks, 4, 'a delete needs no query')
  t.same(client.broadcasts('like').map((frame) => [frame.action, (frame.instance as Row).id]), [['CREATED', 2], ['CREATED', 3], ['UPDATED', 2], ['DELETED', 2]])
  t.same(client.broadcasts('join').map((frame) => [frame.action, (frame.instance as Row).id]), [['CREATED', 2], ['CREATED', 4], ['UPDATED', 2], ['DELETED', 2]])
  t.same(client.broadcasts('like1'), [], 'a retrieve view hears only about its instance')
})

t.test('a changed row is serialized once per route, whatever the number of views', async (t) => {
  const db = sqlite()
  const table = uniqueName('tasks')
  await createTasksTable(db, table)
  t.teardown(async () => { await db.destroy() })
  let calls = 0
  const serialize = (row: Row): string => { calls++; return JSON.stringify(row) }
  const route: RealtimeRoute = {
    id: 1, url: '/t', model: table, kind: 'list', lookup: 'id', pk: 'id', params: [], queryset: undefined, response: undefined, serialize
  }
  const clock = new CommitClock()
  const views = [db(table).where('owner_id', 1), db(table).where('done', false), db(table)]
    .map((builder, n) => new QuerysetView(String(n), route, builder, serialize, undefined, { countQuery: () => {}, clock, schemas }))
  for (const view of views) await view.readAll()
  // another route's view of the same rows, with its own serializer: the text cached for the first must not reach it
  const narrow = (row: Row): string => JSON.stringify({ id: row.id })
  const other = new QuerysetView('other', { ...route, id: 2, url: '/u', serialize: narrow }, db(table), narrow, undefined, { countQuery: () => {}, clock, schemas })
  await other.readAll()
  const row = { id: 1, title: 'a', owner_id: 1, done: 0, secret: 's' }
  // a row this node captured after every read above: trusted in memory (see capture/commit-clock.ts)
  const keys = new Map<string, ChangedRow>([['1', { pk: 1, row, deleted: false, trustedSince: clock.tick() }]])
  const readings = await Promise.all(views.map(async (view) => await view.readChanged(keys)))
  t.equal(calls, 1)
  t.same(readings.map((reading) => reading?.rows.get('1')), Array(3).fill(JSON.stringify(row)))
  t.same(views.map((view) => view.indexKey?.column), ['owner_id', 'done', undefined], 'equality filters are indexed')
  t.same((await other.readChanged(keys))?.rows.get('1'), '{"id":1}', "another route's serializer gets its own text")
})

t.test('what compiles and what does not', async (t) => {
  const db = sqlite()
  const table = uniqueName('tasks')
  await createTasksTable(db, table)
  t.teardown(async () => { await db.destroy() })
  const compiles = async (builder: Knex.QueryBuilder): Promise<boolean> => await compileQueryset(builder, table, 'id', schemas) !== undefined
  const rejected: Array<[string, Knex.QueryBuilder]> = [
    ['raw', db(table).whereRaw('1 = 1')],
    ['raw value', db(table).where('id', db.raw('1'))],
    ['subquery', db(table).whereIn('id', db(table).select('id'))],
    ['multi-column in', db(table).whereIn(['id', 'owner_id'], [[1, 1]])],
    ['exists', db(table).whereExists(db(table).select('id'))],
    ['column comparison', (db(table) as unknown as { whereColumn: (a: string, op: string, b: string) => Knex.QueryBuilder }).whereColumn('id', '=', 'owner_id')],
    ['limit', db(table).limit(10)],
    ['first', db(table).first()],
    ['distinct', db(table).distinct('owner_id')],
    ['select list', db(table).select('id', 'title')],
    ['join', db(table).join('other', 'other.id', `${table}.id`)],
    ['group by', db(table).groupBy('owner_id')],
    ['other table', db('other').where('id', 1)],
    ['raw table', db.queryBuilder().from(db.raw(table))],
    ['unknown column', db(table).where('nope', 1)],
    ['foreign qualifier', db(table).where('other.id', 1)],
    ['deep qualifier', db(table).where(`main.${table}.id`, 1)],
    ['callback with a join', db(table).where((q) => { void q.join('other', 'a', 'b') })],
    ['constant comparison', db(table).where(db.raw('1') as unknown as string, 1)],
    ['like a raw', db(table).whereLike('title', db.raw('?', ['a%']) as unknown as string)],
    ['similar to', db(table).where('title', 'similar to', 'a%')]
  ]
  for (const [name, builder] of rejected) t.equal(await compiles(builder), false, name)
  t.equal(await compiles(db(table).where(1 as unknown as string, '<', 2)), false, 'a constant other than knex\'s empty in')
  await t.rejects(compileQueryset(db(table).where(() => { throw new Error('callback failed') }), table, 'id', schemas), /callback failed/)
  const accepted: Array<[string, Knex.QueryBuilder]> = [
    ['select *', db(table).select('*')],
    [`${table}.*`, db(table).select(`${table}.*`).orderBy('id')],
    ['alias', db(`${table} as x`).where('x.id', 1)],
    ['empty in', db(table).whereIn('id', []).orWhereNotIn('id', [])],
    ['empty group', db(table).where(() => {}).where('id', 1)],
    ['like', db(table).where('title', 'like', 'a%')],
    ['whereLike', db(table).whereLike('title', 'a%')],
    ['date binding', db(table).where('title', new Date())]
  ]
  for (const [name, builder] of accepted) t.equal(await compiles(builder), true, name)

  const matcher = async (builder: Knex.QueryBuilder): Promise<(row: Row) => boolean | undefined> => {
    const compiled = await compileQueryset(builder, table, 'id', schemas)
    return (row) => compiled?.test(row)
  }
  const row = { id: 1, title: 'a', owner_id: 1, done: 0, secret: 's' }
  t.equal((await matcher(db(table).whereIn('id', [])))(row), false, '`in ()` is false')
  t.equal((await matcher(db(table).whereNotIn('id', [])))(row), true, '`not in ()` is true')
  t.equal((await matcher(db(table).whereNot('title', '=', null)))(row), false, 'not (x = null) is null: not true')
  t.equal((await matcher(db(`${table} as x`).where('x.id', 1)))(row), true)
  t.equal((await matcher(db(table).where('id', 1).where(() => {})))(row), true)
  t.equal((await matcher(db(table).whereNot((q) => { void q.where('id', '1') })))(row), undefined, "SQLite's conversion of '1' is left to the database")
  t.equal((await matcher(db(table).where('title', '>', 1)))(row), undefined)

  // rows that are not whole rows
  const full = (await compileQueryset(db(table), table, 'id', schemas))?.full
  t.equal(full?.(row), true)
  t.equal(full?.({ id: 1 }), false, 'missing columns')
  t.equal(full?.({ ...row, secret: undefined, extra: 1 }), false, 'other columns')
  t.equal(full?.({ ...row, done: true }), false, 'a boolean is not a SQLite value')
  t.equal(full?.({ ...row, done: Number.NaN }), false)
})

t.test('SQLite schema details', async (t) => {
  const db = sqlite()
  t.teardown(async () => { await db.destroy() })
  t.equal(sqliteAffinity('INTEGER'), 'number')
  t.equal(sqliteAffinity('varchar(255)'), 'text')
  t.equal(sqliteAffinity('CLOB'), 'text')
  t.equal(sqliteAffinity('blob'), 'any')
  t.equal(sqliteAffinity(''), 'any')
  t.equal(sqliteAffinity('double'), 'number')
  t.equal(sqliteAffinity('boolean'), 'number')
  await db.raw('create table collated (id integer primary key, name text collate nocase, n integer, anything)')
  await db.raw('create table plain (id integer primary key, anything)')
  t.equal(await schemas.of(db('missing'), 'missing'), undefined, 'no such table')
  const test = async (table: string, build: (q: Knex.QueryBuilder) => void, row: Row): Promise<boolean | undefined> => {
    const builder = db(table)
    build(builder)
    return (await compileQueryset(builder, table, 'id', schemas))?.test(row)
  }
  t.equal(await test('collated', (q) => q.where('name', 'A'), { id: 1, name: 'a', n: 1, anything: null }), undefined, 'a COLLATE clause: text left to the database')
  t.equal(await test('collated', (q) => q.where('n', 1), { id: 1, name: 'a', n: 1, anything: null }), true, 'numbers still compared')
  t.equal(await test('plain', (q) => q.where('anything', 'x'), { id: 1, anything: 'x' }), true, 'no affinity: same kinds compare')
  t.equal(await test('plain', (q) => q.where('anything', 2), { id: 1, anything: 1.5 }), false)
  t.equal(await test('plain', (q) => q.where('anything', 2), { id: 1, anything: 'x' }), undefined, 'mixed kinds: left to the database')
  t.equal(await test('plain', (q) => q.where('id', 2 ** 60), { id: 1, anything: null }), undefined, 'integers beyond 2^53')
  const index = (await compileQueryset(db('plain').where('anything', 'x').where('id', 1), 'plain', 'id', schemas))?.index
  t.same(index?.values, ['n1'], 'an untyped column is not indexed; the primary key is')
  t.equal(index?.canon('x'), undefined)
  t.equal(dialectOf({ dialect: 'mysql' }), undefined)
  t.equal(await schemas.of({ client: { dialect: 'mysql' } } as unknown as Knex.QueryBuilder, 'x'), undefined, 'unsupported dialect')
  t.equal(await compileQueryset({ client: { dialect: 'mysql' }, _method: 'select', _single: { table: 'x' }, _statements: [] } as unknown as Knex.QueryBuilder, 'x', 'id', schemas), undefined)
  const broken = { client: { dialect: 'sqlite3', raw: async () => { throw new Error('gone') } } }
  t.equal(await schemas.of(broken as unknown as Knex.QueryBuilder, 'x'), undefined, 'a failing catalogue query')
  const queries = schemas.queries
  t.ok(queries > 0)
  await schemas.of(db('plain'), 'plain')
  t.equal(schemas.queries, queries, 'a table is read once per registration and client')
})

t.test('code point order is SQLite BINARY order', async (t) => {
  const strings = ['', 'a', 'ab', 'b', 'é', '\uFFFD', '😀', '\uE000', 'z😀', 'z\uFFFD']
  for (const a of strings) {
    for (const b of strings) {
      const bytes = Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b)))
      t.equal(Math.sign(compareCodePoints(a, b)), bytes, `${a} vs ${b}`)
    }
  }
  t.ok(compileWith)
})

t.test('PostgreSQL schema details', { skip: !dialects.includes('postgres') }, async (t) => {
  const db = connect('postgres')
  const table = uniqueName('types')
  t.teardown(async () => {
    await db.schema.dropTableIfExists(table)
    await db.destroy()
  })
  await db.raw(`create table ${table} (
    id serial primary key, c text collate "C", big bigint, price numeric, at timestamptz, doc jsonb,
    bin bytea, ok boolean, name varchar(20), r real, "Mixed" int
  )`)
  await db(table).insert({ c: 'a', big: 1, price: 1.5, at: new Date(0), doc: { a: 1 }, bin: Buffer.from('x'), ok: true, name: 'n', r: 0.5, Mixed: 1 })
  const [row] = await db(table).select() as Row[]
  const compile = async (build: (q: Knex.QueryBuilder) => void): Promise<NonNullable<Awaited<ReturnType<typeof compileQueryset>>>> => {
    const builder = db(table)
    build(builder)
    return await compileQueryset(builder, table, 'id', schemas) as NonNullable<Awaited<ReturnType<typeof compileQueryset>>>
  }
  const all = await compile(() => {})
  t.equal(all.full(row as Row), true, 'a row as the driver returns it')
  t.equal(all.full({ ...row, at: new Date(0).toISOString() }), false, 'a timestamp that became a string (JSON) is not')
  t.equal(all.full({ ...row, bin: { type: 'Buffer', data: [120] } }), false)
  const spans = uniqueName('spans')
  await db.raw(`create table ${spans} (id serial primary key, span interval)`)
  t.teardown(async () => { await db.schema.dropTableIfExists(spans) })
  await db(spans).insert({ span: '1 day' })
  const [span] = await db(spans).select() as Row[]
  t.equal((await compileQueryset(db(spans), spans, 'id', schemas))?.full(span as Row), false, 'intervals are objects node-postgres builds: the evaluator does not vouch for them')
  t.equal(all.full({ ...row, big: 1 }), false, 'bigint comes as a string')
  t.equal((await compile((q) => q.where('c', 'a'))).test(row as Row), undefined, 'an explicit collation is left to the database')
  t.equal((await compile((q) => q.where('big', 1))).test(row as Row), true, 'bigint (text from the driver) against an integer')
  t.equal((await compile((q) => q.where('big', '1'))).test(row as Row), undefined, 'a string for a bigint is converted by the database')
  t.equal((await compile((q) => q.where('price', 1.5))).test(row as Row), true, 'numeric against a number: exact decimals')
  t.equal((await compile((q) => q.where('at', new Date(0)))).test(row as Row), undefined, 'the driver keeps milliseconds of microseconds: equality is left to the database')
  t.equal((await compile((q) => q.where('at', '>=', new Date(0)))).test(row as Row), true, 'but not the order')
  t.equal((await compile((q) => q.whereLike('name', 'N'))).test(row as Row), false, 'like is case-sensitive')
  t.equal((await compile((q) => q.whereILike('name', 'N'))).test(row as Row), undefined, 'ilike folds case by the locale: left to the database')
  t.equal((await compile((q) => q.whereLike('c', 'a'))).test(row as Row), undefined, 'like under an explicit collation: left to the database')
  t.equal((await compile((q) => q.where('big', 1))).index, undefined, 'bigint values have no single canonical form: not indexed')
  t.equal((await compile((q) => q.where('price', '1.50'))).test(row as Row), undefined, 'numeric is compared by the database')
  t.equal((await compile((q) => q.whereNotNull('at'))).test(row as Row), true, 'any column can be tested for null')
  t.equal((await compile((q) => q.where('name', '<', 'z'))).test(row as Row), undefined, 'text order follows the locale')
  t.equal((await compile((q) => q.where('name', 'n'))).test(row as Row), true)
  t.equal((await compile((q) => q.where('name', 'n\0'))).test(row as Row), undefined)
  t.equal((await compile((q) => q.where('ok', '<', true))).test(row as Row), false)
  t.equal((await compile((q) => q.where('r', 0.5))).test(row as Row), undefined, 'real is float4: left to the database')
  t.equal((await compile((q) => q.where('Mixed', 1.5))).test(row as Row), undefined, 'a fraction for an integer column')
  const ok = (await compile((q) => q.where('ok', true))).index
  t.same([ok?.column, ok?.values, ok?.canon(true), ok?.canon(1)], ['ok', ['btrue'], 'btrue', undefined])
  const names = (await compile((q) => q.whereIn('name', ['a', 'b']).where('c', 'a'))).index
  t.same([names?.column, names?.values, names?.canon(3)], ['name', ['sa', 'sb'], undefined])
  t.equal((await compile((q) => q.where('Mixed', 1.5))).index, undefined, 'not indexed by a value the column cannot hold')
  t.equal((await compile((q) => q.whereIn('name', ['a', null]))).index, undefined)
})

t.test('the view index', async (t) => {
  const index = new ViewIndex()
  const view = (name: string, values: string[] | undefined): ViewSource => ({
    key: name,
    indexKey: values === undefined ? undefined : { column: 'owner', values, canon: (value: unknown) => typeof value === 'number' ? `n${value}` : undefined }
  }) as unknown as ViewSource
  const one = view('one', ['n1'])
  const two = view('two', ['n2'])
  const three = view('three', ['n3'])
  const scan = view('scan', undefined)
  for (const v of [one, two, three, scan]) index.add(v)
  const change = (row: Row | undefined, deleted = false): ChangedRow => ({ pk: 1, row, deleted })
  const visited = (changes: Map<string, ChangedRow>): string[] => [...index.route(changes).keys()].map((v) => v.key)
  t.same(visited(new Map([['1', change({ owner: 2 })]])), ['scan', 'two'])
  t.same(visited(new Map([['1', { ...change({ owner: 2 }), alsoSeen: [{ owner: 3 }] }]])), ['scan', 'two', 'three'], 'rows of earlier changes in the batch lead to their views too')
  t.same(visited(new Map([['1', { ...change({ owner: 2 }, true), alsoSeen: [{ owner: 1 }] }]])), ['scan', 'one'], 'even when the last change is a delete')
  t.same(visited(new Map([['1', change(undefined)]])), ['scan', 'one', 'two', 'three'], 'an unknown row visits every view')
  index.settle(one, { rows: new Map([['1', '{}']]), examined: null })
  index.hold(two, ['1'])
  index.hold(three, ['1'])
  index.hold(scan, ['1'])
  t.same(visited(new Map([['1', change(undefined, true)]])), ['scan', 'one', 'two', 'three'], 'a deleted row visits every view that held it')
  t.same(visited(new Map([['1', change({ owner: 2 })]])), ['scan', 'two'], 'and forgets them')
  index.remove(two)
  index.remove(scan)
  index.remove(scan)
  index.settle(two, { rows: new Map([['1', '{}']]), examined: ['1'] })
  t.same(visited(new Map([['1', change({ owner: 2 })]])), [])
})

t.test('each registration reads table schemas itself: a migration between two apps on one Knex is seen', async (t) => {
  const db = sqlite()
  const table = uniqueName('tasks')
  await createTasksTable(db, table)
  t.teardown(async () => { await db.destroy() })
  const subscribeAndWrite = async (title: string): Promise<number> => {
    const { app } = await buildTasksApp({ db, table })
    const client = await TestClient.connect(app, { authorization: 'Bearer 1' })
    await client.subscribe({ id: 'mine', model: table, action: 'list' })
    const checks = app.realtime.stats().databaseChecks
    await db(table).insert({ title, owner_id: 1 })
    await client.next((frame) => frame.type === 'broadcast')
    const used = app.realtime.stats().databaseChecks - checks
    client.close()
    await app.close()
    return used
  }
  t.equal(await subscribeAndWrite('before'), 0, 'the first app matches the row in memory')
  await db.schema.alterTable(table, (columns) => { columns.string('note').nullable() })
  // a schema cached process-wide would still say four columns: the row (five) would not be whole, and go to the database
  t.equal(await subscribeAndWrite('after'), 0, 'the second app knows the new column and matches in memory too')
})

/** A table schema as `schemas.of` reads it, built by hand: each dialect's rules, tested without its server. */
function schemaOf (dialect: SchemaDialect, modes: Record<string, CompareMode>): { dialect: SchemaDialect, table: string, columns: Map<string, ColumnInfo> } {
  const columns = new Map<string, ColumnInfo>()
  for (const [name, compare] of Object.entries(modes)) columns.set(name, { name, compare, accepts: () => true })
  return { dialect, table: 'x', columns }
}

/** The evaluator's answer for one row: true, false (false or NULL), undefined (left to the database). */
function decide (dialect: SchemaDialect, modes: Record<string, CompareMode>, build: (q: Knex.QueryBuilder) => void, row: Row): boolean | undefined {
  const db = sqlite()
  const builder = db('x')
  build(builder)
  const matcher = compileWith(builder, schemaOf(dialect, modes), new Set(['x']), 'id')
  void db.destroy()
  if (matcher === undefined) throw new Error('did not compile')
  return matcher.test(row)
}

t.test('like: the database\'s own rules, or the database', async (t) => {
  const lite = (build: (q: Knex.QueryBuilder) => void, value: unknown): boolean | undefined => decide('sqlite', { s: 'text', n: 'number' }, build, { s: value, n: 1 })
  t.equal(lite((q) => q.whereLike('s', 'a%'), 'apple'), true)
  t.equal(lite((q) => q.whereLike('s', 'a%'), 'Apple'), true, 'SQLite folds ASCII letters')
  t.equal(lite((q) => q.whereLike('s', 'é'), 'É'), false, 'and only those')
  t.equal(lite((q) => q.whereLike('s', '_'), '😀'), true, '_ is one character, not one UTF-16 unit')
  t.equal(lite((q) => q.whereLike('s', '_'), 'ab'), false)
  t.equal(lite((q) => q.whereLike('s', 'a\\%'), 'a\\b'), true, 'SQLite has no escape character unless asked')
  t.equal(lite((q) => q.whereLike('s', '50%'), '50%'), true, '% matches itself as a wildcard')
  t.equal(lite((q) => q.where('s', 'not like', 'a%'), 'b'), true)
  t.equal(lite((q) => q.whereLike('s', 'x%').orWhereLike('s', '%b'), 'ab'), true, 'or groups of patterns')
  t.equal(lite((q) => q.whereIn('s', ['x', 'ab']), 'ab'), true)
  t.equal(lite((q) => q.whereNotIn('s', ['x', null]), 'ab'), false, 'not in a list with NULL is never true')
  t.equal(lite((q) => q.whereIn('s', ['x', null]).orWhereLike('s', 'a%'), 'ab'), true)
  t.equal(lite((q) => q.whereNot('s', 'like', 'a%'), null), false, 'NULL like anything is NULL')
  t.equal(lite((q) => q.whereNot('s', 'like', null as unknown as string), 'a'), false, 'like NULL is NULL')
  t.equal(lite((q) => q.whereLike('s', 'a%'), null), false)
  t.equal(lite((q) => q.whereLike('s', 1 as unknown as string), '1'), undefined, 'a number pattern is converted by the database')
  t.equal(lite((q) => q.whereLike('s', 'a\0'), 'a'), undefined, 'SQLite stops a pattern at NUL')
  t.equal(lite((q) => q.whereLike('s', 'a%'), 'a\0b'), undefined, 'and a value')
  t.equal(lite((q) => q.whereLike('s', '\uD800'), 'a'), undefined, 'a lone surrogate reaches the database as U+FFFD')
  t.equal(lite((q) => q.whereLike('s', 'a%'), 1), undefined, 'a number in a TEXT column')
  t.equal(lite((q) => q.whereLike('n', '1%'), 'x'), undefined, 'like on a number column converts it')
  t.equal(lite((q) => q.whereLike('s', 'a'.repeat(50_001)), 'a'), undefined, 'a pattern SQLite refuses as too long')
  t.equal(lite((q) => q.whereILike('s', 'a%'), 'a'), undefined, 'ilike: knex versions send different SQL to SQLite')
  t.equal(lite((q) => q.where('s', 'ilike', 'a%'), 'a'), undefined)

  const pg = (build: (q: Knex.QueryBuilder) => void, value: unknown): boolean | undefined => decide('postgresql', { s: 'text-eq', i: 'integer' }, build, { s: value, i: 1 })
  t.equal(pg((q) => q.whereLike('s', 'a%'), 'apple'), true)
  t.equal(pg((q) => q.whereLike('s', 'a%'), 'Apple'), false, 'PostgreSQL like is case-sensitive')
  t.equal(pg((q) => q.whereLike('s', 'a_c'), 'aéc'), true)
  t.equal(pg((q) => q.whereLike('s', 'a\\%'), 'a%'), undefined, 'a backslash escapes in PostgreSQL: left to the database')
  t.equal(pg((q) => q.whereILike('s', 'a%'), 'A'), undefined, 'ilike follows the locale')
  t.equal(pg((q) => q.where('s', 'not ilike', 'a%'), 'A'), undefined)
  t.equal(pg((q) => q.whereLike('i', '1'), 1), undefined, 'like on an integer column')
  t.equal(pg((q) => q.whereILike('s', 'a%'), null), false, 'NULL is NULL however it is compared')

  const raw = { client: sqlite().client, _method: 'select', _single: { table: 'x' }, _statements: [{ grouping: 'where', type: 'whereLike', column: 's', value: 't', bool: 'and', asColumn: true }] }
  t.equal(compileWith(raw as unknown as Knex.QueryBuilder, schemaOf('sqlite', { s: 'text', t: 'text' }), new Set(['x']), 'id'), undefined, 'a column on the right is not compiled')
  void (raw.client as { destroy: () => Promise<void> }).destroy()

  t.equal(likeMatch([], []), true)
  t.equal(likeMatch([], ['%']), true)
  t.equal(likeMatch(['a'], []), false)
  t.equal(likeMatch([...'aab'], [...'%ab']), true, 'backtracks to the last %')
  t.equal(likeMatch([...'abcbc'], [...'%b%c']), true)
  t.equal(likeMatch([...'ab'], [...'a%c']), false)
  t.equal(likeMatch([...'a'.repeat(5000)], [...'%a%a%a%a%b']), false, 'a pathological pattern stays polynomial')
})

t.test('dates, bigint and numeric in memory', async (t) => {
  const modes: Record<string, CompareMode> = { tz: 'timestamptz', ts: 'timestamp', day: 'date', big: 'bigint', num: 'numeric', n: 'number' }
  const pg = (build: (q: Knex.QueryBuilder) => void, row: Row): boolean | undefined => decide('postgresql', modes, build, row)
  const at = new Date('2024-01-01T00:00:00.000Z')
  const later = new Date('2024-01-01T00:00:00.001Z')
  // a row's timestamp is floored to milliseconds by the driver: equal milliseconds may hide microseconds above
  const ops: Array<[string, boolean | undefined]> = [['=', undefined], ['<>', undefined], ['<', false], ['<=', undefined], ['>', undefined], ['>=', true]]
  for (const [op, answer] of ops) t.equal(pg((q) => q.where('tz', op, at), { tz: at }), answer, `timestamptz ${op} at equal milliseconds`)
  t.equal(pg((q) => q.where('tz', '<', later), { tz: at }), true)
  t.equal(pg((q) => q.where('tz', '=', later), { tz: at }), false)
  t.equal(pg((q) => q.where('tz', '>', at), { tz: later }), true)
  t.equal(pg((q) => q.whereBetween('tz', [at, later]), { tz: at }), true, 'between: >= and <= the next millisecond')
  t.equal(pg((q) => q.where('tz', '<', '2024-01-02'), { tz: at }), undefined, 'a string is read with the session\'s settings')
  t.equal(pg((q) => q.where('tz', '<', new Date('+010000-01-01T00:00:00Z')), { tz: at }), undefined, 'years PostgreSQL and the driver may write differently')
  t.equal(pg((q) => q.where('tz', '<', later), { tz: new Date(Number.NaN) }), undefined, 'not a date')
  t.equal(pg((q) => q.where('tz', '<', later), { tz: null }), false)
  t.equal(pg((q) => q.where('n', later), { n: later.getTime() }), undefined, 'a Date for another type')

  t.equal(pg((q) => q.where('ts', '>=', at), { ts: at }), true, 'timestamp without time zone, process in UTC')
  t.equal(pg((q) => q.where('day', at), { day: at }), true)
  t.equal(pg((q) => q.where('day', new Date('2024-01-01T23:59:59.999Z')), { day: at }), true, 'a Date binding is its day')
  t.equal(pg((q) => q.where('day', '<', new Date('1969-12-31T12:00:00.000Z')), { day: new Date('1969-12-31T00:00:00.000Z') }), false, 'before 1970 too')
  t.equal(pg((q) => q.where('day', '<', later), { day: later }), undefined, 'a date value that is not a midnight')
  t.equal(pg((q) => q.where('day', '<', '2024-01-02'), { day: at }), undefined)
  const zone = process.env.TZ
  t.teardown(() => {
    if (zone === undefined) delete process.env.TZ
    else process.env.TZ = zone
  })
  // node-postgres reads and writes these types in local time: only UTC, away from an offset change, is provably the same instant
  process.env.TZ = 'America/New_York'
  t.equal(pg((q) => q.where('ts', '>=', at), { ts: at }), undefined, 'timestamp, local time not UTC')
  t.equal(pg((q) => q.where('day', at), { day: at }), undefined)
  t.equal(pg((q) => q.where('tz', '>=', at), { tz: at }), true, 'timestamptz carries its offset')
  process.env.TZ = 'Europe/London'
  const january = new Date('2024-01-15T12:00:00.000Z')
  t.equal(pg((q) => q.where('ts', '>=', january), { ts: january }), true, 'London in winter is UTC')
  const beforeSpring = new Date('2024-03-30T12:00:00.000Z')
  t.equal(pg((q) => q.where('ts', '>=', january), { ts: beforeSpring }), undefined, 'a day before summer time')
  const afterAutumn = new Date('2024-10-27T12:00:00.000Z')
  t.equal(pg((q) => q.where('ts', '>=', january), { ts: afterAutumn }), undefined, 'a day after it')
  t.equal(pg((q) => q.where('ts', '<', beforeSpring), { ts: january }), undefined, 'the binding too')
  process.env.TZ = 'UTC'

  t.equal(pg((q) => q.where('big', '<', 9007199254740991), { big: '9007199254740992' }), false, 'int8 at 2^53, exactly')
  t.equal(pg((q) => q.where('big', '>', 9007199254740991), { big: '9007199254740993' }), true, 'int8 beyond 2^53, exactly')
  t.equal(pg((q) => q.where('big', -1), { big: '-1' }), true)
  t.equal(pg((q) => q.where('big', 1.5), { big: '1' }), undefined, 'a fraction for int8 is refused by the database')
  t.equal(pg((q) => q.where('big', 1), { big: 1 }), undefined, 'not a driver value')
  t.equal(pg((q) => q.where('big', 1), { big: '1.0' }), undefined, 'not int8 text')

  t.equal(pg((q) => q.where('num', 1.5), { num: '1.50' }), true)
  t.equal(pg((q) => q.where('num', '>', 1e-7), { num: '0.00' }), false, 'exponents as node-postgres writes them')
  t.equal(pg((q) => q.where('num', '<', 1e21), { num: '999999999999999999999' }), true)
  t.equal(pg((q) => q.where('num', '<', 0.1), { num: '0.1' }), false, 'the decimal a number prints as, not its binary value')
  t.equal(pg((q) => q.where('num', '<', 1), { num: 'NaN' }), undefined, 'NaN orders above everything in PostgreSQL')
  t.equal(pg((q) => q.where('num', '<', Number.POSITIVE_INFINITY), { num: '1' }), undefined)
  t.equal(pg((q) => q.where('num', '<', '1'), { num: '0' }), undefined, 'a string is parsed by the database')
  t.equal(pg((q) => q.where('num', '<', 1), { num: 0 }), undefined, 'not a driver value')

  const lite = (build: (q: Knex.QueryBuilder) => void, row: Row): boolean | undefined => decide('sqlite', { at: 'number' }, build, row)
  t.equal(lite((q) => q.where('at', '<', later), { at: at.getTime() }), true, 'SQLite gets a Date as its milliseconds')
  t.equal(lite((q) => q.where('at', '<', later), { at: '2024-01-01' }), undefined, 'a date stored as text')
})
