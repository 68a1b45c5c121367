/**
 * The in-memory evaluator against the database itself: random rows, random
 * filters, on SQLite and PostgreSQL. For every row the evaluator decides, its
 * answer must be the database's. Seeds: test/helpers/seeds.ts (each run prints
 * the TEST_SEED that replays it).
 */
import type { Knex } from 'knex'
import t, { type Test } from 'tap'
import { compileQueryset } from '../lib/matcher/evaluator.js'
import { TableSchemas } from '../lib/matcher/schema.js'
import type { Row } from '../lib/types.js'
import { connect, postgresAvailable, uniqueName, type Dialect } from './helpers/db.js'
import { seedsFor } from './helpers/seeds.js'

const CASES = 300
const ROWS = 40

/** mulberry32: a small seeded PRNG. */
function prng (seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

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

type Filter = (builder: Knex.QueryBuilder) => void

function filterMaker (dialect: Dialect, table: string, random: () => number) {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T
  const columns = Object.keys(domains)
  const value = (column: string): unknown => random() < 0.1 ? pick(strangers[dialect][column] as unknown[]) : pick(domains[column] as unknown[])
  const nonNull = (column: string): unknown => {
    const v = value(column)
    return v === null ? (domains[column] as unknown[])[1] : v
  }
  /** like / ilike / not like on the text columns. */
  const likeLeaf = (): Filter => {
    const qualified = random() < 0.3 ? `${table}.${pick(['s', 't'])}` : pick(['s', 't'])
    const negate = random() < 0.15
    const or = random() < 0.3
    const pattern = pick(likePatterns)
    const method = pick(['like', 'ilike', 'basic', 'not like'] as const)
    if (method === 'basic') return (b) => { b[or ? (negate ? 'orWhereNot' : 'orWhere') : (negate ? 'whereNot' : 'where')](qualified, 'like', pattern) }
    // chosen here, not in the closure: a where(callback) group runs its closures at every compile
    const negated = dialect === 'postgres' && random() < 0.3 ? 'not ilike' : 'not like'
    if (method === 'not like') return (b) => { b[or ? 'orWhere' : 'where'](qualified, negated, pattern) }
    const name = method === 'like' ? (or ? 'orWhereLike' : 'whereLike') : (or ? 'orWhereILike' : 'whereILike')
    return (b) => { b[name](qualified, pattern) }
  }
  const leaf = (): Filter => {
    if (random() < 0.15) return likeLeaf()
    const column = pick(columns)
    const qualified = random() < 0.3 ? `${table}.${column}` : column
    const kind = random()
    const negate = random() < 0.15
    const or = random() < 0.3
    if (kind < 0.45) {
      const op = pick(['=', '<>', '!=', '<', '<=', '>', '>='])
      const v = random() < 0.05 ? null : value(column)
      return (b) => { b[or ? (negate ? 'orWhereNot' : 'orWhere') : (negate ? 'whereNot' : 'where')](qualified, op, v as Knex.Value) }
    }
    if (kind < 0.65) {
      const items = Array.from({ length: 1 + Math.floor(random() * 3) }, () => random() < 0.1 ? null : nonNull(column))
      const method = random() < 0.5 ? (or ? 'orWhereIn' : 'whereIn') : (or ? 'orWhereNotIn' : 'whereNotIn')
      return (b) => { b[method](qualified, items as readonly Knex.Value[]) }
    }
    if (kind < 0.8) {
      const method = random() < 0.5 ? (or ? 'orWhereNull' : 'whereNull') : (or ? 'orWhereNotNull' : 'whereNotNull')
      return (b) => { b[method](qualified) }
    }
    if (kind < 0.9 && column !== 'b') {
      const range = [nonNull(column), nonNull(column)] as const
      const method = random() < 0.7 ? (or ? 'orWhereBetween' : 'whereBetween') : (or ? 'orWhereNotBetween' : 'whereNotBetween')
      return (b) => { b[method](qualified, range as unknown as readonly [Knex.Value, Knex.Value]) }
    }
    const v = nonNull(column)
    return (b) => { b.where({ [qualified]: v as Knex.Value }) }
  }
  const group = (depth: number): Filter[] => {
    const count = 1 + Math.floor(random() * 3)
    const parts: Filter[] = []
    for (let n = 0; n < count; n++) {
      if (depth < 2 && random() < 0.25) {
        const inner = group(depth + 1)
        const or = random() < 0.4
        const negate = random() < 0.2
        parts.push((b) => {
          const callback = function (this: Knex.QueryBuilder): void { for (const part of inner) part(this) }
          b[or ? (negate ? 'orWhereNot' : 'orWhere') : (negate ? 'whereNot' : 'where')](callback)
        })
      } else {
        parts.push(leaf())
      }
    }
    return parts
  }
  return (): Filter[] => group(0)
}

async function property (t: Test, dialect: Dialect, seed: number): Promise<void> {
  const db = connect(dialect)
  const table = uniqueName('prop')
  t.teardown(async () => {
    await db.schema.dropTableIfExists(table)
    await db.destroy()
  })
  await createTable(db, table)
  const random = prng(seed)
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T
  const stored = (column: string): unknown[] => [...domains[column] as unknown[], ...storedOnly[dialect][column] ?? []]
  const inserts = Array.from({ length: ROWS }, () => Object.fromEntries(Object.keys(domains).map((column) => [column, pick(stored(column))])))
  await db(table).insert(inserts)
  const rows = await db(table).select() as Row[]
  const nextFilter = filterMaker(dialect, table, random)

  let decided = 0
  let undecided = 0
  let compiled = 0
  let partial = 0
  const mismatches: string[] = []
  for (let n = 0; n < CASES; n++) {
    const parts = nextFilter()
    const real = db(table)
    for (const part of parts) part(real)
    let expected: Set<unknown>
    try {
      expected = new Set((await real.clone().select('id') as Row[]).map((row) => row.id))
    } catch {
      continue // a binding the database refuses: nothing to compare
    }
    const matcher = await compileQueryset(real, table, 'id', new TableSchemas())
    if (matcher === undefined) {
      mismatches.push(`did not compile: ${real.toString()}`)
      continue
    }
    compiled++
    for (const row of rows) {
      if (!matcher.full(row)) partial++
      const inView = matcher.test(row)
      if (inView === undefined) {
        undecided++
        continue
      }
      decided++
      if (inView !== expected.has(row.id)) mismatches.push(`${real.toString()} on ${JSON.stringify(row)}: evaluator ${String(inView)}, database ${String(!inView)}`)
    }
  }
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
