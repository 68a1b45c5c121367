/**
 * Compiles a queryset (a Knex builder) into a predicate on one row, so a change
 * can be matched against a view without asking the database.
 *
 * Only what can be proved equivalent is compiled: a single-table `select *`
 * whose where clauses are `=`, `<>`, `<`, `<=`, `>`, `>=`, `in`, `not in`,
 * `between`, `is null`, `is not null`, `not` and and/or groups of those, with
 * plain values. Anything else (joins, raw SQL, `like`, subqueries, limit,
 * distinct, a select list…) compiles to `undefined`: the view asks the database.
 *
 * Evaluation follows SQL's three-valued logic, plus a fourth value for "cannot
 * tell" (a comparison whose dialect semantics the evaluator does not reproduce
 * for these operands): a row the predicate cannot decide goes to the database.
 */
import type { Knex } from 'knex'
import { builderTableRef } from '../capture/table-names.js'
import { partsOf, statementsOfGroup, type BuilderParts, type BuilderStatement } from '../knex/internals.js'
import type { Row } from '../types.js'
import type { ColumnInfo, CompareMode, Dialect, TableSchema, TableSchemas } from './schema.js'

/** SQL truth values, plus UNDECIDED: the evaluator cannot tell (T, F or NULL). */
export const FALSE = 0
export const TRUE = 1
export const UNKNOWN = 2
export const UNDECIDED = 3
export type Truth = typeof FALSE | typeof TRUE | typeof UNKNOWN | typeof UNDECIDED

type Node = (row: Row) => Truth

/** An equality every row of the view satisfies: the view can be found by the column's value. */
export interface IndexKey {
  column: string
  /** Canonical values (see `canonical`); a row whose column is none of them is not in the view. */
  values: string[]
  /** The canonical form of a row's value, or undefined when it cannot be compared exactly. */
  canon: (value: unknown) => string | undefined
}

export interface Matcher {
  /** Whether the row is in the view; undefined when only the database can tell. */
  test: (row: Row) => boolean | undefined
  /** Whether a row is a whole row as the driver returns it (same columns, same value shapes). */
  full: (row: Row) => boolean
  /** An equality filter the view can be indexed by, if any. */
  index: IndexKey | undefined
}

class Unsupported extends Error {}

interface Context {
  dialect: Dialect
  columns: Map<string, ColumnInfo>
  /** Names a column may be qualified with: the table and its alias. */
  qualifiers: Set<string>
  /** The queryset: where(callback) groups are compiled on a fresh builder of its client. */
  builder: Knex.QueryBuilder
}

/** A leaf that may index the view: `column = value` or `column in (…)`, not negated. */
interface Equality {
  column: ColumnInfo
  values: unknown[]
}

interface Compiled {
  node: Node
  /** Equalities that must hold for the node to be true. */
  equalities: Equality[]
}

/**
 * The predicate of a queryset over `model`, or undefined when the queryset is
 * not something the evaluator can reproduce exactly. Reads the table's columns
 * once (cached in `schemas`, the registration's).
 */
export async function compileQueryset (builder: Knex.QueryBuilder, model: string, pk: string, schemas: TableSchemas): Promise<Matcher | undefined> {
  const table = tableOf(partsOf(builder), model)
  if (table === undefined) return undefined
  const schema = await schemas.of(builder, model)
  if (schema === undefined) return undefined
  return compileWith(builder, schema, table.qualifiers, pk)
}

/** Compiles against a known schema (synchronous; exported for tests). */
export function compileWith (builder: Knex.QueryBuilder, schema: TableSchema, qualifiers: Set<string>, pk: string): Matcher | undefined {
  const ctx: Context = { dialect: schema.dialect, columns: schema.columns, qualifiers, builder }
  const { statements } = partsOf(builder)
  let compiled: Compiled | undefined
  try {
    if (!selectsWholeRows(statements, qualifiers)) return undefined
    compiled = compileWhere(statements, ctx)
  } catch (err) {
    if (err instanceof Unsupported) return undefined
    throw err
  }
  const node = compiled?.node ?? (() => TRUE)
  const columns = [...schema.columns.values()]
  return {
    test (row) {
      const truth = node(row)
      return truth === UNDECIDED ? undefined : truth === TRUE
    },
    full (row) {
      if (Object.keys(row).length !== columns.length) return false
      for (const column of columns) {
        if (!(column.name in row) || !column.accepts(row[column.name])) return false
      }
      return true
    },
    index: compiled === undefined ? undefined : indexKey(compiled.equalities, pk)
  }
}

/**
 * `tasks`, `tasks as t`, `{ t: 'tasks' }`: the queryset reads the model's table
 * (unqualified, spelled as the model is), under these names; read as the
 * capture reads a write's table (table-names.ts).
 */
function tableOf (builder: BuilderParts, model: string): { qualifiers: Set<string> } | undefined {
  if (builder.method !== 'select') return undefined
  for (const [key, value] of Object.entries(builder.single)) {
    // limit, offset, lock, counter, only, withSchema…: not a plain filter
    if (key !== 'table' && !(key === 'only' && value === false)) return undefined
  }
  const ref = builderTableRef(builder.single)
  if (ref === undefined || ref.schema !== undefined || ref.name !== model) return undefined
  return { qualifiers: new Set([ref.alias ?? model]) }
}

function selectsWholeRows (statements: readonly BuilderStatement[], qualifiers: Set<string>): boolean {
  for (const statement of statements) {
    if (statement.grouping === 'where' || statement.grouping === 'order') continue
    if (statement.grouping !== 'columns' || Object.keys(statement).length !== 2 || !Array.isArray(statement.value)) return false
    for (const column of statement.value as unknown[]) {
      if (column !== '*' && !(typeof column === 'string' && column.endsWith('.*') && qualifiers.has(column.slice(0, -2)))) return false
    }
  }
  return true
}

/** The where clauses, in knex's order and with SQL precedence (and before or, no parentheses added). */
function compileWhere (statements: readonly BuilderStatement[], ctx: Context): Compiled | undefined {
  const groups: Compiled[][] = []
  for (const statement of statements) {
    if (statement.grouping !== 'where') continue
    const compiled = compileStatement(statement, ctx)
    if (compiled === undefined) continue // an empty group: knex leaves it out
    if (groups.length === 0 || statement.bool === 'or') groups.push([compiled])
    else groups[groups.length - 1]?.push(compiled)
  }
  if (groups.length === 0) return undefined
  const ors = groups.map((group) => group.length === 1 ? group[0] as Compiled : { node: and(group.map((c) => c.node)), equalities: group.flatMap((c) => c.equalities) })
  if (ors.length === 1) return ors[0]
  return { node: or(ors.map((c) => c.node)), equalities: [] }
}

function compileStatement (statement: BuilderStatement, ctx: Context): Compiled | undefined {
  let compiled: Compiled
  switch (statement.type) {
    case 'whereWrapped': {
      // knex only files functions as whereWrapped, and compiles a callback by calling it on a fresh builder, every time: so does this
      const inner = statementsOfGroup(ctx.builder, statement.value)
      if (inner.some((s) => s.grouping !== 'where')) throw new Unsupported()
      const group = compileWhere(inner, ctx)
      if (group === undefined) return undefined
      compiled = group
      break
    }
    case 'whereBasic':
      compiled = basic(statement, ctx)
      break
    case 'whereIn':
      compiled = whereIn(statement, ctx)
      break
    case 'whereNull': {
      const column = columnOf(statement.column, ctx)
      compiled = { node: (row) => row[column.name] === null ? TRUE : FALSE, equalities: [] }
      break
    }
    case 'whereBetween': {
      const column = columnOf(statement.column, ctx)
      const [low, high] = statement.value as unknown[] // knex insists on two values
      compiled = { node: and([comparison(column, '>=', binding(low, ctx)), comparison(column, '<=', binding(high, ctx))]), equalities: [] }
      break
    }
    default:
      throw new Unsupported()
  }
  return statement.not === true ? { node: not(compiled.node), equalities: [] } : compiled
}

const operators = new Set(['=', '<>', '!=', '<', '<=', '>', '>='])

function basic (statement: BuilderStatement, ctx: Context): Compiled {
  const operator = statement.operator
  if (statement.asColumn === true || typeof operator !== 'string' || !operators.has(operator)) throw new Unsupported()
  const value = binding(statement.value, ctx)
  if (typeof statement.column === 'number' && operator === '=' && typeof value === 'number') {
    // whereIn(col, []) compiles to `1 = 0`, whereNotIn(col, []) to `1 = 1`
    const truth: Truth = statement.column === value ? TRUE : FALSE
    return { node: () => truth, equalities: [] }
  }
  const column = columnOf(statement.column, ctx)
  return {
    node: comparison(column, operator, value),
    equalities: operator === '=' && value !== null ? [{ column, values: [value] }] : []
  }
}

function whereIn (statement: BuilderStatement, ctx: Context): Compiled {
  if (!Array.isArray(statement.value)) throw new Unsupported()
  const column = columnOf(statement.column, ctx)
  const values = (statement.value as unknown[]).map((value) => binding(value, ctx))
  const leaves = values.map((value) => comparison(column, '=', value))
  return { node: or(leaves), equalities: values.includes(null) ? [] : [{ column, values }] }
}

function columnOf (column: unknown, ctx: Context): ColumnInfo {
  if (typeof column !== 'string') throw new Unsupported()
  const parts = column.split('.')
  if (parts.length > 2 || (parts.length === 2 && !ctx.qualifiers.has(parts[0] as string))) throw new Unsupported()
  const info = ctx.columns.get(parts[parts.length - 1] as string)
  if (info === undefined) throw new Unsupported()
  return info
}

/** A bound value as the database receives it; throws for what is not a plain value. */
function binding (value: unknown, ctx: Context): unknown {
  if (value === null || typeof value === 'string' || typeof value === 'number') return value
  if (typeof value === 'boolean') return ctx.dialect === 'sqlite' ? Number(value) : value // knex binds SQLite booleans as 1/0
  throw new Unsupported()
}

/** Compares a row value with a binding as the column's database would: <0, 0, >0, or undefined (cannot tell). */
type Comparator = (value: unknown, bound: unknown) => number | undefined

const MAX_EXACT = 2 ** 53
const exactNumber = (value: unknown): value is number => typeof value === 'number' && !Number.isNaN(value) && !(Number.isInteger(value) && Math.abs(value) >= MAX_EXACT)

function numeric (value: unknown, bound: unknown): number | undefined {
  if (!exactNumber(value) || !exactNumber(bound)) return undefined
  return value < bound ? -1 : value > bound ? 1 : 0
}

/** UTF-8 byte order (SQLite's BINARY collation) is code point order. */
export function compareCodePoints (a: string, b: string): number {
  if (a === b) return 0
  const length = Math.min(a.length, b.length)
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x === y) continue
    // a surrogate (a code point above U+FFFF) sorts after every other BMP code unit
    const xs = x >= 0xd800 && x <= 0xdfff
    const ys = y >= 0xd800 && y <= 0xdfff
    if (xs !== ys) return xs ? 1 : -1
    return x - y
  }
  return a.length - b.length
}

const comparators: Record<Exclude<CompareMode, undefined>, Comparator> = {
  integer: (value, bound) => typeof bound === 'number' && Number.isInteger(bound) && Math.abs(bound) < 2 ** 31 ? numeric(value, bound) : undefined,
  number: numeric,
  boolean: (value, bound) => typeof value === 'boolean' && typeof bound === 'boolean' ? Number(value) - Number(bound) : undefined,
  'text-eq': (value, bound) => typeof value === 'string' && typeof bound === 'string' && !bound.includes('\0') ? (value === bound ? 0 : Number.NaN) : undefined,
  text: (value, bound) => typeof value === 'string' && typeof bound === 'string' ? compareCodePoints(value, bound) : undefined,
  any: (value, bound) => typeof value === 'string' && typeof bound === 'string' ? compareCodePoints(value, bound) : numeric(value, bound)
}

const tests: Record<string, (order: number) => boolean> = {
  '=': (order) => order === 0,
  '<>': (order) => order !== 0,
  '!=': (order) => order !== 0,
  '<': (order) => order < 0,
  '<=': (order) => order <= 0,
  '>': (order) => order > 0,
  '>=': (order) => order >= 0
}

function comparison (column: ColumnInfo, operator: string, bound: unknown): Node {
  if (bound === null) return () => UNKNOWN // `col = NULL` is never true
  const compare = column.compare === undefined ? undefined : comparators[column.compare]
  // text-eq answers NaN for "different, order unknown": fine for = and <>, undecided for the rest
  if (compare === undefined || (column.compare === 'text-eq' && operator !== '=' && operator !== '<>' && operator !== '!=')) {
    return (row) => row[column.name] === null ? UNKNOWN : UNDECIDED
  }
  const test = tests[operator] as (order: number) => boolean
  const name = column.name
  return (row) => {
    const value = row[name]
    if (value === null) return UNKNOWN
    const order = compare(value, bound)
    if (order === undefined) return UNDECIDED
    return test(order) ? TRUE : FALSE
  }
}

function and (nodes: Node[]): Node {
  return (row) => {
    let result: Truth = TRUE
    for (const node of nodes) {
      const truth = node(row)
      if (truth === FALSE) return FALSE
      if (truth > result) result = truth
    }
    return result
  }
}

function or (nodes: Node[]): Node {
  return (row) => {
    let result: Truth = FALSE
    for (const node of nodes) {
      const truth = node(row)
      if (truth === TRUE) return TRUE
      if (truth > result) result = truth
    }
    return result
  }
}

const negation: Record<Truth, Truth> = { [FALSE]: TRUE, [TRUE]: FALSE, [UNKNOWN]: UNKNOWN, [UNDECIDED]: UNDECIDED }

function not (node: Node): Node {
  return (row) => negation[node(row)]
}

/** The canonical form of a value for equality under a compare mode, or undefined when it has none. */
export function canonical (mode: IndexMode, value: unknown): string | undefined {
  if (mode === 'boolean') return typeof value === 'boolean' ? `b${value}` : undefined
  if (mode === 'text' || mode === 'text-eq') return typeof value === 'string' ? `s${value}` : undefined
  return exactNumber(value) ? `n${value}` : undefined
}

type IndexMode = Exclude<CompareMode, 'any' | undefined>

/**
 * The equality to index the view by: the primary key's if there is one, else
 * the first. Only modes where "the comparator can decide" and "the canonical
 * forms are equal" coincide qualify (not `any`, where a string and a number
 * are undecided rather than different).
 */
function indexKey (equalities: Equality[], pk: string): IndexKey | undefined {
  let best: IndexKey | undefined
  for (const { column, values } of equalities) {
    const mode = column.compare
    if (mode === undefined || mode === 'any') continue
    const compare = comparators[mode]
    if (values.length === 0 || values.some((value) => compare(value, value) !== 0)) continue
    const keys = values.map((value) => canonical(mode, value) as string)
    const key: IndexKey = { column: column.name, values: keys as string[], canon: (value) => canonical(mode, value) }
    if (column.name === pk) return key
    best ??= key
  }
  return best
}
