/**
 * The in-memory evaluator against the database itself: random rows, random
 * filters, on SQLite and PostgreSQL. For every row the evaluator decides, its
 * answer must be the database's. Seeds: test/helpers/seeds.ts (each run prints
 * the TEST_SEED that replays it).
 */
import fc from 'fast-check'
import type { Knex } from 'knex'
import t, { type Test } from 'tap'
import { compileQueryset } from '../lib/matcher/evaluator.js'
import { TableSchemas } from '../lib/matcher/schema.js'
import type { Row } from '../lib/types.js'
import { connect, postgresAvailable, uniqueName, type Dialect } from './helpers/db.js'
import { seedsFor } from './helpers/seeds.js'

const CASES = 300
const ROWS = 40

const domains: Record<string, unknown[]> = {
  i: [null, -1, 0, 1, 2, 3, 40],
  f: [null, -0.5, 0, 1, 1.5, 2.25, 1e10],
  b: [null, true, false],
  s: [null, '', 'a', 'b', 'A', 'ab', 'a b', 'é', 'É', 'e\u0301', '😀', '\uFFFD', 'z', 'a_', 'a%', '50%', 'a\\b'],
  t: [null, 'x', 'y', 'X', 'xy', '10', '9'],
  d: [null, 0, 1, 2.5, -1.25, 0.1],
  big: [null, -1, 0, 1, 2 ** 40],
  at: [null, new Date(0), new Date('2024-01-01T00:00:00.000Z'), new Date('2024-01-01T00:00:00.001Z'), new Date('1999-12-31T23:59:59.999Z')],
  ts: [null, new Date(0), new Date('2024-01-01T00:00:00.000Z'), new Date('2024-01-01T00:00:00.001Z')],
  day: [null, new Date('2024-01-01T00:00:00.000Z'), new Date('2024-01-02T00:00:00.000Z'), new Date('2024-01-01T12:00:00.000Z'), new Date('1969-12-31T00:00:00.000Z'), new Date('1969-12-31T12:00:00.000Z')]
}
/** Row values only: PostgreSQL keeps microseconds the driver floors to milliseconds, and int8 beyond 2^53. */
const storedOnly: Record<Dialect, Record<string, unknown[]>> = {
  sqlite: {},
  postgres: { at: ['2024-01-01 00:00:00.0005+00', '2024-01-01 00:00:00.0015+00'], ts: ['2024-01-01 00:00:00.0005'], big: ['9007199254740993'], d: ['1.005'] }
}
/** LIKE patterns: wildcards, case, escapes (PostgreSQL's default `\\`), non-ASCII. */
const likePatterns = ['a%', '%b', '_', 'a_', '%', '', 'A%', 'é%', '_%_', '%\\%', 'a\\_', '😀', 'e_', '%x%', 'X', '%a%b%', '__', '1%']
/** Bindings of another type than the column's: the evaluator must not guess how the database converts them. */
const strangers: Record<Dialect, Record<string, unknown[]>> = {
  sqlite: { i: ['1', true, 'x'], f: ['1.5', false], b: [1, 0, 'true'], s: [1, 0], t: [10, 9], d: ['1'], big: ['1'], at: ['2024-01-01'], ts: [0], day: ['2024-01-01'] },
  postgres: { i: ['1', '2'], f: ['1.5'], b: ['true', 'f'], s: [1], t: [10], d: ['1', 2, 1.005, 1e-7], big: ['1', 1.5], at: ['2024-01-01'], ts: ['2024-01-01'], day: ['2024-01-01'] }
}

async function createTable (db: Knex, table: string): Promise<void> {
  await db.schema.dropTableIfExists(table)
  await db.schema.createTable(table, (tb) => {
    tb.increments('id').primary()
    tb.integer('i')
    tb.double('f')
    tb.boolean('b')
    tb.string('s')
    tb.text('t')
    tb.decimal('d', 8, 2)
    tb.bigInteger('big')
    tb.timestamp('at', { useTz: true })
    tb.timestamp('ts', { useTz: false })
    tb.date('day')
  })
}

/** A where clause as data, so fast-check can shrink it and print it. */
type Where = 'where' | 'whereNot' | 'orWhere' | 'orWhereNot'
type Node =
  | { kind: 'compare', method: Where, column: string, op: string, value: unknown }
  | { kind: 'in', method: 'whereIn' | 'whereNotIn' | 'orWhereIn' | 'orWhereNotIn', column: string, items: unknown[] }
  | { kind: 'null', method: 'whereNull' | 'whereNotNull' | 'orWhereNull' | 'orWhereNotNull', column: string }
  | { kind: 'between', method: 'whereBetween' | 'whereNotBetween' | 'orWhereBetween' | 'orWhereNotBetween', column: string, range: [unknown, unknown] }
  | { kind: 'object', column: string, value: unknown }
  | { kind: 'like', method: 'whereLike' | 'orWhereLike' | 'whereILike' | 'orWhereILike', column: string, pattern: string }
  | { kind: 'group', method: Where, parts: Node[] }

function apply (builder: Knex.QueryBuilder, node: Node): void {
  switch (node.kind) {
    case 'compare': builder[node.method](node.column, node.op, node.value as Knex.Value); break
    case 'in': builder[node.method](node.column, node.items as readonly Knex.Value[]); break
    case 'null': builder[node.method](node.column); break
    case 'between': builder[node.method](node.column, node.range as unknown as readonly [Knex.Value, Knex.Value]); break
    case 'object': builder.where({ [node.column]: node.value as Knex.Value }); break
    case 'like': builder[node.method](node.column, node.pattern); break
    case 'group': builder[node.method](function (this: Knex.QueryBuilder): void { for (const part of node.parts) apply(this, part) })
  }
}

/** `yes` with odds `p`, else `no` (what it shrinks to). */
const odds = <T>(p: number, yes: fc.Arbitrary<T>, no: fc.Arbitrary<T>): fc.Arbitrary<T> =>
  fc.oneof({ arbitrary: no, weight: Math.round((1 - p) * 100) }, { arbitrary: yes, weight: Math.round(p * 100) })
/** One of a method's four forms, [plain, negated, or, or-negated]: negated with odds `negate`, or-ed with odds `or`. */
const form = <M extends string>(negate: number, or: number, [plain, negated, orPlain, orNegated]: [M, M, M, M]): fc.Arbitrary<M> =>
  odds(or, odds(negate, fc.constant(orNegated), fc.constant(orPlain)), odds(negate, fc.constant(negated), fc.constant(plain)))
const where = (negate: number, or: number): fc.Arbitrary<Where> => form<Where>(negate, or, ['where', 'whereNot', 'orWhere', 'orWhereNot'])

/** Filters over the table: leaves on a random column, nested at most two groups deep. */
function filters (dialect: Dialect, table: string): fc.Arbitrary<Node[]> {
  const value = (column: string): fc.Arbitrary<unknown> => odds(0.1, fc.constantFrom(...strangers[dialect][column] as unknown[]), fc.constantFrom(...domains[column] as unknown[]))
  const nonNull = (column: string): fc.Arbitrary<unknown> => value(column).map((v) => v === null ? (domains[column] as unknown[])[1] : v)
  const leaf = fc.tuple(fc.constantFrom(...Object.keys(domains)), odds(0.3, fc.constant(true), fc.constant(false))).chain(([column, qualify]): fc.Arbitrary<Node> => {
    const name = qualify ? `${table}.${column}` : column
    // BETWEEN is not asked of a boolean column: its share goes to the object form
    const between = column === 'b' ? 0 : 10
    const kinds: Array<fc.WeightedArbitrary<Node>> = [
      { weight: 45, arbitrary: fc.record({ kind: fc.constant('compare' as const), method: where(0.15, 0.3), column: fc.constant(name), op: fc.constantFrom('=', '<>', '!=', '<', '<=', '>', '>='), value: odds(0.05, fc.constant(null), value(column)) }) },
      { weight: 20, arbitrary: fc.record({ kind: fc.constant('in' as const), method: form(0.5, 0.3, ['whereIn', 'whereNotIn', 'orWhereIn', 'orWhereNotIn'] as const), column: fc.constant(name), items: fc.array(odds(0.1, fc.constant(null), nonNull(column)), { minLength: 1, maxLength: 3 }) }) },
      { weight: 15, arbitrary: fc.record({ kind: fc.constant('null' as const), method: form(0.5, 0.3, ['whereNull', 'whereNotNull', 'orWhereNull', 'orWhereNotNull'] as const), column: fc.constant(name) }) },
      { weight: 20 - between, arbitrary: fc.record({ kind: fc.constant('object' as const), column: fc.constant(name), value: nonNull(column) }) }
    ]
    if (between > 0) kinds.push({ weight: between, arbitrary: fc.record({ kind: fc.constant('between' as const), method: form(0.3, 0.3, ['whereBetween', 'whereNotBetween', 'orWhereBetween', 'orWhereNotBetween'] as const), column: fc.constant(name), range: fc.tuple(nonNull(column), nonNull(column)) }) })
    return fc.oneof(...kinds)
  })
  /** like / ilike / not like on the text columns: knex's whereLike and whereILike, `like` as an operator, and `not like` (`not ilike` on PostgreSQL). */
  const likeLeaf = fc.tuple(fc.constantFrom('s', 't'), odds(0.3, fc.constant(true), fc.constant(false))).chain(([column, qualify]): fc.Arbitrary<Node> => {
    const name = qualify ? `${table}.${column}` : column
    const pattern = fc.constantFrom(...likePatterns)
    const negated = dialect === 'postgres' ? odds(0.3, fc.constant('not ilike'), fc.constant('not like')) : fc.constant('not like')
    return fc.oneof(
      fc.record({ kind: fc.constant('like' as const), method: odds(0.3, fc.constant('orWhereLike' as const), fc.constant('whereLike' as const)), column: fc.constant(name), pattern }),
      fc.record({ kind: fc.constant('like' as const), method: odds(0.3, fc.constant('orWhereILike' as const), fc.constant('whereILike' as const)), column: fc.constant(name), pattern }),
      fc.record({ kind: fc.constant('compare' as const), method: where(0.15, 0.3), column: fc.constant(name), op: fc.constant('like'), value: pattern }),
      fc.record({ kind: fc.constant('compare' as const), method: odds(0.3, fc.constant<Where>('orWhere'), fc.constant<Where>('where')), column: fc.constant(name), op: negated, value: pattern })
    )
  })
  const { parts } = fc.letrec<{ parts: Node[], part: Node, group: Node }>((tie) => ({
    parts: fc.array(tie('part'), { minLength: 1, maxLength: 3 }),
    part: fc.oneof({ maxDepth: 2, depthIdentifier: 'group' }, { weight: 75, arbitrary: odds(0.15, likeLeaf, leaf) }, { weight: 25, arbitrary: tie('group') }),
    group: fc.record({ kind: fc.constant('group' as const), method: where(0.2, 0.4), parts: tie('parts') })
  }))
  return parts
}

/** Rows for one case: up to ROWS, shrinking to the one the evaluator gets wrong. Row values include the dialect's `storedOnly`. */
function rowsArbitrary (dialect: Dialect): fc.Arbitrary<Array<Record<string, unknown>>> {
  const row = fc.record(Object.fromEntries(Object.entries(domains).map(([column, values]) => [column, fc.constantFrom(...values, ...storedOnly[dialect][column] ?? [])])))
  return fc.array(row, { minLength: 1, maxLength: ROWS, size: 'max' })
}

async function property (t: Test, dialect: Dialect, seed: number): Promise<void> {
  const db = connect(dialect)
  const table = uniqueName('prop')
  t.teardown(async () => {
    await db.schema.dropTableIfExists(table)
    await db.destroy()
  })
  await createTable(db, table)

  let decided = 0
  let undecided = 0
  let compiled = 0
  let partial = 0
  // each case writes its own rows, so a failure shrinks to the fewest, simplest rows and the smallest filter
  const check = fc.asyncProperty(rowsArbitrary(dialect), filters(dialect, table), async (inserts, nodes) => {
    await db(table).del()
    const rows = await db(table).insert(inserts).returning('*') as Row[]
    const real = db(table)
    for (const node of nodes) apply(real, node)
    let expected: Set<unknown>
    try {
      expected = new Set((await real.clone().select('id') as Row[]).map((row) => row.id))
    } catch {
      return // a binding the database refuses: nothing to compare
    }
    const matcher = await compileQueryset(real, table, 'id', new TableSchemas())
    if (matcher === undefined) throw new Error(`did not compile: ${real.toString()}`)
    compiled++
    for (const row of rows) {
      if (!matcher.full(row)) partial++
      const inView = matcher.test(row)
      if (inView === undefined) {
        undecided++
        continue
      }
      decided++
      if (inView !== expected.has(row.id)) throw new Error(`${real.toString()} on ${JSON.stringify(row)}: evaluator ${String(inView)}, database ${String(!inView)}`)
    }
  })
  const details = await fc.check(check, { seed, numRuns: CASES })
  const mismatches = details.failed ? [fc.defaultReportMessage(details)] : []
  t.equal(partial, 0, 'rows read from the driver are whole rows')
  t.same(mismatches, [], 'the evaluator agrees with the database on every row it decides')
  t.ok(compiled > CASES * 0.8, `most filters compile (${compiled}/${CASES})`)
  t.ok(decided > (decided + undecided) * 0.6, `most rows are decided in memory (${decided} decided, ${undecided} left to the database)`)
}

const dialects: Dialect[] = ['sqlite']
if (await postgresAvailable()) dialects.push('postgres')

const seeds = seedsFor(t)
for (const dialect of dialects) {
  for (const seed of seeds) {
    t.test(`${dialect}: evaluator = database (seed ${seed})`, async (t) => {
      await property(t, dialect, seed)
    })
  }
}
