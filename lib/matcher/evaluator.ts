/**
 * Compiles a queryset (a Knex builder) into a predicate on one row, so a change
 * can be matched against a view without asking the database.
 *
 * Only what can be proved equivalent is compiled: a single-table `select *`
 * whose where clauses are `=`, `<>`, `<`, `<=`, `>`, `>=`, `in`, `not in`,
 * `between`, `is null`, `is not null`, `like`, `ilike`, `not` and and/or groups
 * of those, with plain values (strings, numbers, booleans, null, Dates).
 * Anything else (joins, raw SQL, subqueries, limit, distinct, a select list…)
 * compiles to `undefined`: the view asks the database.
 *
 * Evaluation follows SQL's three-valued logic, plus a fourth value for "cannot
 * tell" (a comparison whose dialect semantics the evaluator does not reproduce
 * for these operands: `ilike` in PostgreSQL, a pattern with backslashes, a
 * string for a date…): a row the predicate cannot decide goes to the database.
 * docs/benchmarks.md ("What simple filters means") lists what is decided where.
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
    case 'whereLike':
    case 'whereILike': {
      const column = columnOf(statement.column, ctx)
      if (statement.asColumn === true) throw new Unsupported()
      compiled = { node: like(column, statement.type === 'whereILike', binding(statement.value, ctx), ctx.dialect), equalities: [] }
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
/** Pattern operators knex passes through as written: whether each ignores case, and is negated. */
const patterns: Record<string, { insensitive: boolean, negated: boolean }> = {
  like: { insensitive: false, negated: false },
  ilike: { insensitive: true, negated: false },
  'not like': { insensitive: false, negated: true },
  'not ilike': { insensitive: true, negated: true }
}

function basic (statement: BuilderStatement, ctx: Context): Compiled {
  const operator = statement.operator
  if (statement.asColumn === true || typeof operator !== 'string') throw new Unsupported()
  const pattern = patterns[operator]
  if (pattern !== undefined) {
    const node = like(columnOf(statement.column, ctx), pattern.insensitive, binding(statement.value, ctx), ctx.dialect)
    return { node: pattern.negated ? not(node) : node, equalities: [] }
  }
  if (!operators.has(operator)) throw new Unsupported()
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
  // knex binds a Date to SQLite as its milliseconds; node-postgres sends it as text with its offset
  if (value instanceof Date) return ctx.dialect === 'sqlite' ? value.valueOf() : value
  throw new Unsupported()
}

/**
 * Compares a row value with a binding as the column's database would: <0, 0,
 * >0, or undefined (cannot tell); NaN for "different, order unknown" and
 * AT_LEAST for "equal or just above" (a timestamp the driver truncated).
 */
type Comparator = (value: unknown, bound: unknown) => number | undefined

/** The row value is the binding or above it by less than the driver's precision: only `<` and `>=` are decided. */
const AT_LEAST = 0.5

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
  any: (value, bound) => typeof value === 'string' && typeof bound === 'string' ? compareCodePoints(value, bound) : numeric(value, bound),
  bigint: (value, bound) => typeof value === 'string' && integerText.test(value) && Number.isSafeInteger(bound) ? sign(BigInt(value) - BigInt(bound as number)) : undefined,
  numeric: (value, bound) => typeof value === 'string' ? compareDecimals(value, bound) : undefined,
  timestamptz: (value, bound) => instant(value, bound, false),
  timestamp: (value, bound) => instant(value, bound, true),
  date: calendarDay
}

/** int8 as node-postgres returns it; anything else (a row from elsewhere) is not read as a number here. */
const integerText = /^-?\d+$/
const sign = (n: bigint): number => n < 0n ? -1 : n > 0n ? 1 : 0

/** A decimal as node-postgres writes a JS number and PostgreSQL writes a numeric: digits and a power of ten. */
function decimal (text: string): { digits: bigint, exponent: number } | undefined {
  const match = /^(-?)(\d+)(?:\.(\d+))?(?:e([+-]?\d+))?$/.exec(text)
  if (match === null) return undefined // NaN, Infinity: PostgreSQL orders them its own way
  const fraction = match[3] ?? ''
  const digits = BigInt(`${match[1] as string}${match[2] as string}${fraction}`)
  return { digits, exponent: Number(match[4] ?? 0) - fraction.length }
}

/** A numeric column's text against a number binding (sent as `String(n)`, read exactly by PostgreSQL). */
function compareDecimals (value: string, bound: unknown): number | undefined {
  if (typeof bound !== 'number' || !Number.isFinite(bound)) return undefined
  const a = decimal(value)
  const b = decimal(String(bound)) as { digits: bigint, exponent: number } // a finite number always reads
  if (a === undefined) return undefined
  const shift = a.exponent - b.exponent
  return shift >= 0
    ? sign(a.digits * 10n ** BigInt(shift) - b.digits)
    : sign(a.digits - b.digits * 10n ** BigInt(-shift))
}

const DAY = 86_400_000
/** 0001-01-02 to 9999-12-30 UTC: years node-postgres and PostgreSQL both write plainly, whatever the offset. */
const EARLIEST = -62_135_510_400_000
const LATEST = 253_402_041_600_000
const plainDate = (value: unknown): value is Date => value instanceof Date && value.getTime() >= EARLIEST && value.getTime() <= LATEST

/**
 * Whether the process's local time is UTC around this instant (a day either
 * side, so no offset change is near): node-postgres reads `timestamp` and
 * `date` values as local time and sends Dates as local time, PostgreSQL drops
 * the offset for those types; only without an offset are both the same instant.
 */
const utcAround = (date: Date): boolean =>
  date.getTimezoneOffset() === 0 && new Date(date.getTime() - DAY).getTimezoneOffset() === 0 && new Date(date.getTime() + DAY).getTimezoneOffset() === 0

/**
 * A timestamp against a Date binding. The driver keeps milliseconds of
 * PostgreSQL's microseconds, flooring (postgres-date): the stored value is in
 * [row, row + 1 ms), and the binding is whole milliseconds.
 */
function instant (value: unknown, bound: unknown, local: boolean): number | undefined {
  if (!plainDate(value) || !plainDate(bound)) return undefined
  if (local && (!utcAround(value) || !utcAround(bound))) return undefined
  const difference = value.getTime() - bound.getTime()
  return difference === 0 ? AT_LEAST : difference
}

/** A date (read as local midnight) against a Date binding (PostgreSQL keeps the day it is written with). */
function calendarDay (value: unknown, bound: unknown): number | undefined {
  if (!plainDate(value) || !plainDate(bound) || !utcAround(value) || !utcAround(bound) || value.getTime() % DAY !== 0) return undefined
  const time = bound.getTime()
  return value.getTime() - (time - (((time % DAY) + DAY) % DAY)) // the day's midnight, before 1970 too
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
  const atLeast = operator === '<' ? FALSE : operator === '>=' ? TRUE : UNDECIDED
  const name = column.name
  return (row) => {
    const value = row[name]
    if (value === null) return UNKNOWN
    const order = compare(value, bound)
    if (order === undefined) return UNDECIDED
    if (order === AT_LEAST) return atLeast
    return test(order) ? TRUE : FALSE
  }
}

/** SQLite refuses LIKE patterns longer than this many bytes (SQLITE_MAX_LIKE_PATTERN_LENGTH's default). */
const SQLITE_MAX_PATTERN = 50_000

/**
 * `column like pattern`, where the evaluator reproduces the database's rules:
 * - SQLite (TEXT affinity, BINARY collation): no escape character, `_` is one
 *   character, case folded for ASCII letters only (the default
 *   `case_sensitive_like = OFF`); `ilike` is left to the database (knex 3.0
 *   sends it as is, which SQLite refuses; later 3.x send `like`);
 * - PostgreSQL (text/varchar in the database's collation, which is
 *   deterministic): characters compared exactly, `\` is the default escape
 *   character: a pattern with one is left to the database, as is `ilike`,
 *   whose case folding follows the locale.
 */
function like (column: ColumnInfo, insensitive: boolean, bound: unknown, dialect: Dialect): Node {
  const undecided: Node = (row) => row[column.name] === null ? UNKNOWN : UNDECIDED
  if (bound === null) return () => UNKNOWN
  if (typeof bound !== 'string' || bound.includes('\0') || loneSurrogate.test(bound)) return undecided
  const sqlite = dialect === 'sqlite'
  if (sqlite ? column.compare !== 'text' || insensitive || Buffer.byteLength(bound) > SQLITE_MAX_PATTERN : column.compare !== 'text-eq' || insensitive || bound.includes('\\')) return undecided
  const fold = sqlite ? asciiLower : (text: string): string => text
  const pattern = [...fold(bound)]
  const name = column.name
  return (row) => {
    const value = row[name]
    if (value === null) return UNKNOWN
    // SQLite reads text up to a NUL; a number in a TEXT column is converted its own way
    if (typeof value !== 'string' || value.includes('\0')) return UNDECIDED
    return likeMatch([...fold(value)], pattern) ? TRUE : FALSE
  }
}

/** A lone surrogate reaches the database as U+FFFD: the pattern it would run is not this one. */
const loneSurrogate = /[\uD800-\uDFFF]/u

const asciiLower = (text: string): string => text.replace(/[A-Z]/g, (letter) => letter.toLowerCase())

/**
 * `%` (any run) and `_` (one code point) against code points, greedy with one
 * backtrack point: O(text × pattern) at worst, whatever the pattern (a regular
 * expression built from a user's pattern could backtrack exponentially).
 */
export function likeMatch (text: readonly string[], pattern: readonly string[]): boolean {
  let t = 0
  let p = 0
  let starP = -1
  let starT = 0
  while (t < text.length) {
    const c = pattern[p]
    if (c === '%') {
      starP = p++
      starT = t
    } else if (c !== undefined && (c === '_' || c === text[t])) {
      t++
      p++
    } else if (starP >= 0) {
      p = starP + 1
      t = ++starT
    } else {
      return false
    }
  }
  while (pattern[p] === '%') p++
  return p === pattern.length
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

type IndexMode = 'integer' | 'number' | 'boolean' | 'text-eq' | 'text'
/** Modes whose equal values have one canonical form (not `any`; not the text-valued or truncated PostgreSQL types). */
const indexModes = new Set<CompareMode>(['integer', 'number', 'boolean', 'text-eq', 'text'])

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
    if (!indexModes.has(mode)) continue
    const compare = comparators[mode as IndexMode]
    if (values.length === 0 || values.some((value) => compare(value, value) !== 0)) continue
    const keys = values.map((value) => canonical(mode as IndexMode, value) as string)
    const key: IndexKey = { column: column.name, values: keys as string[], canon: (value) => canonical(mode as IndexMode, value) }
    if (column.name === pk) return key
    best ??= key
  }
  return best
}
