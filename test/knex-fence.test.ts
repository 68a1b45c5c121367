/**
 * The Knex fence (lib/knex/internals.ts): nothing else in lib/ touches Knex's
 * internals, and the one table-name reading agrees with Knex's own, on the Knex
 * these tests run with (KNEX_PACKAGE: the newest, or the oldest 3.x).
 */
import t from 'tap'
import { readdir, readFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Knex } from 'knex'
import { TableNames, builderTableRef, parseTableRef, type AliasedTableRef } from '../lib/capture/table-names.js'
import { compileQueryset } from '../lib/matcher/evaluator.js'
import { TableSchemas } from '../lib/matcher/schema.js'
import { isQueryBuilder, partsOf } from '../lib/knex/internals.js'
import { KNEX_VERSION, createTasksTable, knex, sqlite, uniqueName } from './helpers/db.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const FENCE = 'lib/knex/internals.ts'

t.comment(`Knex ${KNEX_VERSION}`)

async function sources (dir: string): Promise<string[]> {
  const out: string[] = []
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) out.push(...await sources(path))
    else if (entry.name.endsWith('.ts')) out.push(path)
  }
  return out
}

t.test('only the fence touches Knex internals', async (t) => {
  // `._x`, '_x' as a key, and the client parts the capture wraps
  const internal = /\._[A-Za-z]|['"`]_[a-z]\w*['"`]|\bconstructor\.prototype\b|\.runner\b/
  const found: string[] = []
  const files = await sources(join(root, 'lib'))
  t.ok(files.some((file) => relative(root, file) === FENCE), 'the fence is among the files read')
  for (const file of files) {
    if (relative(root, file) === FENCE) continue
    const lines = (await readFile(file, 'utf8')).split('\n')
    lines.forEach((line, index) => { if (internal.test(line)) found.push(`${relative(root, file)}:${index + 1}: ${line.trim()}`) })
  }
  t.same(found, [], `every private access of Knex is in ${FENCE}`)
  const fence = await readFile(join(root, FENCE), 'utf8')
  t.match(fence, /_statements/, 'the pattern finds what it looks for')
  t.ok(internal.test('builder._single'))
})

/** The FROM clause Knex (PostgreSQL) writes for a table reference, as the parser read it. */
function from (ref: AliasedTableRef): string {
  const qualified = `${ref.schema === undefined ? '' : `"${ref.schema}".`}"${ref.name}"`
  return `select * from ${qualified}${ref.alias === undefined ? '' : ` as "${ref.alias}"`}`
}

t.test('one table-name reading, the one Knex has', async (t) => {
  const db = knex({ client: 'pg' }) // compiles only, never connects
  t.teardown(async () => { await db.destroy() })
  const cases: Array<[string, Knex.QueryBuilder, AliasedTableRef | undefined]> = [
    ['bare', db('tasks'), { schema: undefined, name: 'tasks', alias: undefined }],
    ['schema-qualified', db('audit.tasks'), { schema: 'audit', name: 'tasks', alias: undefined }],
    ['aliased', db('tasks as t'), { schema: undefined, name: 'tasks', alias: 't' }],
    ['aliased, any case', db('tasks AS t'), { schema: undefined, name: 'tasks', alias: 't' }],
    ['qualified and aliased', db('audit.tasks as t'), { schema: 'audit', name: 'tasks', alias: 't' }],
    ['spaces around the parts', db(' audit . tasks  as  t '), { schema: 'audit', name: 'tasks', alias: 't' }],
    ['a space is not an alias', db('tasks t'), { schema: undefined, name: 'tasks t', alias: undefined }],
    ['a tab is not the alias separator', db('tasks\tas t'), { schema: undefined, name: 'tasks\tas t', alias: undefined }],
    ['an alias object', db({ t: 'tasks' }), { schema: undefined, name: 'tasks', alias: 't' }],
    ['an alias object, qualified', db({ t: 'audit.tasks' }), { schema: 'audit', name: 'tasks', alias: 't' }],
    ['withSchema', db('tasks').withSchema('audit'), { schema: 'audit', name: 'tasks', alias: undefined }],
    ['withSchema and an alias', db('tasks as t').withSchema('audit'), { schema: 'audit', name: 'tasks', alias: 't' }],
    ['raw', db.queryBuilder().from(db.raw('tasks')), undefined],
    ['subquery', db.queryBuilder().from(db('tasks').as('t')), undefined],
    ['several tables', db({ t: 'tasks', u: 'users' }), undefined],
    ['three parts', db('a.b.c'), undefined]
  ]
  for (const [name, builder, expected] of cases) {
    const ref = builderTableRef(partsOf(builder).single)
    t.same(ref, expected, name)
    if (ref !== undefined) t.equal(builder.toSQL().sql, from(ref), `${name}: what Knex ${KNEX_VERSION} writes`)
  }

  t.ok(isQueryBuilder(db('tasks')), 'a builder is told by its record of itself')
  t.notOk(isQueryBuilder(db.raw('select 1')), 'a raw query is not a builder')
  t.same(partsOf(db('tasks').where('id', 1).update({ title: 'x' })), {
    method: 'update',
    single: { table: 'tasks', only: false, update: { title: 'x' } },
    statements: [{ grouping: 'where', type: 'whereBasic', column: 'id', operator: '=', value: 1, not: false, bool: 'and', asColumn: false }]
  }, `the builder parts lib/ reads, as Knex ${KNEX_VERSION} records them`)

  t.same(parseTableRef('"audit"."Tasks" as "t"'), { schema: 'audit', name: 'Tasks', alias: 't' }, 'quotes dropped (a route model may be written quoted)')
  t.equal(parseTableRef('audit.'), undefined, 'an empty part')

  const names = TableNames.of({ dialect: 'postgresql' })
  t.equal(names.ofBuilder(partsOf(db('public.tasks as t')).single), 'tasks', 'the default schema is no schema')
  t.equal(names.ofBuilder(partsOf(db({ t: 'tasks' }).withSchema('audit')).single), 'audit.tasks')
  t.equal(names.ofString('tasks t'), 'tasks t')
})

t.test('the evaluator reads the queryset\'s table as the capture reads a write\'s', async (t) => {
  const db = sqlite()
  const table = uniqueName('tasks')
  await createTasksTable(db, table)
  t.teardown(async () => { await db.destroy() })
  const row = { id: 1, title: 'a', owner_id: 1, done: 0, secret: 's' }
  const test = async (builder: Knex.QueryBuilder): Promise<boolean | undefined | 'not compiled'> => {
    const matcher = await compileQueryset(builder, table, 'id', new TableSchemas())
    return matcher === undefined ? 'not compiled' : matcher.test(row)
  }
  t.equal(await test(db({ x: table }).where('x.id', 1)), true, 'an alias object qualifies columns like `as`')
  t.equal(await test(db({ x: table }).where('x.id', 2)), false)
  t.equal(await test(db({ x: table }).where(`${table}.id`, 1)), 'not compiled', 'the table name no longer qualifies once aliased')
  t.equal(await test(db(`${table} AS x`).where('x.id', 1)), true)
  t.equal(await test(db(`main.${table}`).where('id', 1)), 'not compiled', 'schema-qualified: left to the database')
  t.equal(await test(db(table).withSchema('main').where('id', 1)), 'not compiled', 'withSchema: left to the database')
  t.same(await db({ x: table }).where('x.id', 1), [], 'the database agrees the alias object is valid SQL')
})
