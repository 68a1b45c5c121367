/**
 * What the evaluator must know about a table to agree with the database: its
 * columns, how the database compares each one with a bound value, and what a
 * row value looks like when it comes straight from the driver.
 *
 * Read once per table and Knex client (one catalogue query), then cached by
 * the registration's `TableSchemas`.
 */
import type { Knex } from 'knex'
import { clientOf, clientRaw, dialectName } from '../knex/internals.js'

export type Dialect = 'postgresql' | 'sqlite'

/**
 * How the database compares a column with a binding, as far as the evaluator
 * can reproduce it:
 * - `integer`: PostgreSQL int2/int4 (the binding is cast to the column type);
 * - `number`: PostgreSQL float8, SQLite INTEGER/REAL/NUMERIC affinity;
 * - `boolean`: PostgreSQL bool;
 * - `text-eq`: PostgreSQL text/varchar in the default (deterministic) collation: equality only,
 *   ordering follows the locale;
 * - `text`: SQLite TEXT affinity, BINARY collation (UTF-8 byte order);
 * - `any`: SQLite BLOB / no affinity: no conversion, same-kind values only;
 * - `bigint`: PostgreSQL int8 (node-postgres returns the decimal text), integer bindings;
 * - `numeric`: PostgreSQL numeric (returned as text), compared as exact decimals with number bindings;
 * - `timestamptz`, `timestamp`, `date`: PostgreSQL's date types (returned as Dates), with Date bindings;
 * - `undefined`: only `is null` / `is not null`.
 */
export type CompareMode = 'integer' | 'number' | 'boolean' | 'text-eq' | 'text' | 'any' | 'bigint' | 'numeric' | 'timestamptz' | 'timestamp' | 'date' | undefined

export interface ColumnInfo {
  name: string
  compare: CompareMode
  /** Whether a value has the shape the driver returns for this column (a full-fidelity row value). */
  accepts: (value: unknown) => boolean
}

export interface TableSchema {
  dialect: Dialect
  table: string
  columns: Map<string, ColumnInfo>
}

export function dialectOf (client: unknown): Dialect | undefined {
  const dialect = dialectName(client)
  return dialect === 'postgresql' ? 'postgresql' : dialect === 'sqlite3' ? 'sqlite' : undefined
}

/**
 * The schemas of the tables one registration's views read: one per plugin
 * registration (index.ts), handed to its views, so nothing is shared between
 * Fastify instances. Keyed by Knex client too: a queryset may be built on
 * another Knex instance than the plugin's.
 */
export class TableSchemas {
  readonly #byClient = new WeakMap<object, Map<string, Promise<TableSchema | undefined>>>()
  /** Catalogue queries made so far (one per table and client). */
  queries = 0

  /** The table's schema, or undefined when it cannot be read (unsupported dialect, no such table). */
  async of (builder: Knex.QueryBuilder, table: string): Promise<TableSchema | undefined> {
    const client = clientOf(builder)
    const dialect = dialectOf(client)
    if (dialect === undefined) return undefined
    let tables = this.#byClient.get(client)
    if (tables === undefined) {
      tables = new Map()
      this.#byClient.set(client, tables)
    }
    let schema = tables.get(table)
    if (schema === undefined) {
      this.queries++
      schema = readSchema(client, dialect, table)
      tables.set(table, schema)
    }
    return await schema
  }
}

async function readSchema (client: object, dialect: Dialect, table: string): Promise<TableSchema | undefined> {
  try {
    const columns = dialect === 'postgresql' ? await pgColumns(client, table) : await sqliteColumns(client, table)
    return columns.size === 0 ? undefined : { dialect, table, columns }
  } catch {
    return undefined
  }
}

function rowsOf (result: unknown): Array<Record<string, unknown>> {
  return (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as Array<Record<string, unknown>>
}

const isNumber = (value: unknown): boolean => typeof value === 'number'
const isString = (value: unknown): boolean => typeof value === 'string'
const isBoolean = (value: unknown): boolean => typeof value === 'boolean'
const isDate = (value: unknown): boolean => value instanceof Date
const isBuffer = (value: unknown): boolean => Buffer.isBuffer(value)
const isAnything = (): boolean => true
const orNull = (accepts: (value: unknown) => boolean) => (value: unknown): boolean => value === null || accepts(value)

/** node-postgres' default parsers: the JavaScript shape of each PostgreSQL type (strings for the rest). */
const pgShapes: Record<string, (value: unknown) => boolean> = {
  int2: isNumber,
  int4: isNumber,
  oid: isNumber,
  float4: isNumber,
  float8: isNumber,
  bool: isBoolean,
  date: isDate,
  timestamp: isDate,
  timestamptz: isDate,
  json: isAnything,
  jsonb: isAnything,
  bytea: isBuffer
}
const pgCompare: Record<string, CompareMode> = {
  int2: 'integer',
  int4: 'integer',
  int8: 'bigint',
  numeric: 'numeric',
  float8: 'number',
  bool: 'boolean',
  text: 'text-eq',
  varchar: 'text-eq',
  timestamptz: 'timestamptz',
  timestamp: 'timestamp',
  date: 'date'
}
/** Types whose values node-postgres returns as something a string check would wrongly accept or reject. */
const pgOpaque = /^_|^(interval|point|circle|line|lseg|box|path|polygon)$/

async function pgColumns (client: object, table: string): Promise<Map<string, ColumnInfo>> {
  const result = await clientRaw(client,
    `select a.attname as name, t.typname as type,
            (a.attcollation <> 0 and a.attcollation <> t.typcollation) as collated
       from pg_attribute a join pg_type t on t.oid = a.atttypid
      where a.attrelid = to_regclass(?) and a.attnum > 0 and not a.attisdropped
      order by a.attnum`,
    [`"${table.replace(/"/g, '""')}"`]
  )
  const columns = new Map<string, ColumnInfo>()
  for (const row of rowsOf(result)) {
    const name = row.name as string
    const type = row.type as string
    const compare = row.collated === true && pgCompare[type] === 'text-eq' ? undefined : pgCompare[type]
    const shape = pgShapes[type] ?? (pgOpaque.test(type) ? () => false : isString)
    columns.set(name, { name, compare, accepts: orNull(shape) })
  }
  return columns
}

/** SQLite's column affinity rules (https://sqlite.org/datatype3.html §3.1). */
export function sqliteAffinity (declared: string): CompareMode {
  const type = declared.toUpperCase()
  if (type.includes('INT')) return 'number'
  if (/CHAR|CLOB|TEXT/.test(type)) return 'text'
  if (type.includes('BLOB') || type === '') return 'any'
  return 'number' // REAL and NUMERIC affinities compare numbers numerically
}

async function sqliteColumns (client: object, table: string): Promise<Map<string, ColumnInfo>> {
  const info = rowsOf(await clientRaw(client, 'select name, type from pragma_table_info(?)', [table]))
  const [definition] = rowsOf(await clientRaw(client, "select sql from sqlite_master where type = 'table' and name = ?", [table]))
  // a COLLATE clause anywhere (NOCASE, RTRIM…) makes text comparisons something the evaluator does not reproduce
  const collated = /\bcollate\b/i.test(String(definition?.sql))
  const columns = new Map<string, ColumnInfo>()
  for (const row of info) {
    const name = row.name as string
    const affinity = sqliteAffinity(row.type as string)
    const compare = collated && affinity !== 'number' ? undefined : affinity
    // better-sqlite3 returns numbers, strings and null (Buffers for blobs, bigints in safe-integer mode: not here)
    columns.set(name, { name, compare, accepts: (value) => value === null || (typeof value === 'number' && Number.isFinite(value)) || typeof value === 'string' })
  }
  return columns
}
