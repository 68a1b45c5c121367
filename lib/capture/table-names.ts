/**
 * One name per table, whichever way a route or a write spells it.
 *
 * A table in another schema is another table: `audit.tasks` is not `tasks`.
 * An unqualified name is the table in the default schema, so `public.tasks`
 * (PostgreSQL) and `main.tasks` (SQLite) are `tasks`:
 * - PostgreSQL: the default schema is the first entry of Knex's `searchPath`
 *   option, else `public`. Knex quotes every identifier it writes, so names are
 *   compared exactly (`Tasks` is not `tasks`).
 * - SQLite: the default schema is `main`; an attached database's tables are
 *   `<database>.<table>`. SQLite compares table and schema names without
 *   regard to ASCII case, and so does this.
 * The key is what `tasks`, `public.tasks`, `"public"."tasks"`, `tasks as t`,
 * `{ t: 'tasks' }` and `db('tasks').withSchema('public')` have in common:
 * `tasks`; for another schema, `audit.tasks`.
 */
export type NamingDialect = 'postgresql' | 'sqlite' | 'other'

export interface TableRef {
  schema: string | undefined
  name: string
}

/** A table as a query names it: the table, and the name its columns are qualified with when it is aliased. */
export interface AliasedTableRef extends TableRef {
  alias: string | undefined
}

/**
 * The one reading of a table string, as Knex reads it (wrappingFormatter.js
 * `wrapString`, the same in 3.0.1 and 3.3.0): an alias after the first ` as `
 * (one space either side, any case), then schema and table split at dots, each
 * trimmed. `tasks t` is one name (Knex quotes it whole), so is `tasks\tas t`.
 * One more step than Knex: a segment's surrounding quotes are dropped, so a
 * route's model may be written `"audit"."tasks"`.
 *
 *   'audit.tasks as t'  → { schema: 'audit', name: 'tasks', alias: 't' }
 *   '"public"."Tasks"'  → { schema: 'public', name: 'Tasks', alias: undefined }
 *   'a.b.c', 'audit.'   → undefined (not a table Knex can name)
 */
export function parseTableRef (table: string): AliasedTableRef | undefined {
  const as = aliasSeparator(table)
  const name = as === -1 ? table : table.slice(0, as)
  const alias = as === -1 ? undefined : unquote(table.slice(as + 4).trim())
  const parts = name.split('.').map((part) => unquote(part.trim()))
  if (parts.length > 2 || parts.some((part) => part === '')) return undefined
  return parts.length === 2
    ? { schema: parts[0], name: parts[1] as string, alias }
    : { schema: undefined, name: parts[0] as string, alias }
}

/**
 * The table a builder names (Knex's `table` and `withSchema`, see
 * lib/knex/internals.ts): a string, or an object `{ alias: 'table' }` with one
 * entry; undefined for a subquery, a raw, several tables, or a name Knex
 * cannot take. `withSchema('audit')` qualifies a bare name.
 */
export function builderTableRef (single: { table?: unknown, schema?: unknown }): AliasedTableRef | undefined {
  let table = single.table
  let objectAlias: string | undefined
  if (table !== null && typeof table === 'object' && !Array.isArray(table) && Object.getPrototypeOf(table) === Object.prototype) {
    const entries = Object.entries(table)
    if (entries.length !== 1) return undefined
    ;[objectAlias, table] = entries[0] as [string, unknown]
  }
  if (typeof table !== 'string') return undefined
  const ref = parseTableRef(table)
  if (ref === undefined) return undefined
  return {
    schema: ref.schema ?? (typeof single.schema === 'string' ? single.schema : undefined),
    name: ref.name,
    alias: objectAlias ?? ref.alias
  }
}

function aliasSeparator (table: string): number {
  return table.toLowerCase().indexOf(' as ')
}

function unquote (part: string): string {
  return part.replace(/^["`[]|["`\]]$/g, '')
}

export class TableNames {
  readonly dialect: NamingDialect
  readonly defaultSchema: string | undefined

  constructor (dialect: NamingDialect, defaultSchema: string | undefined) {
    this.dialect = dialect
    this.defaultSchema = defaultSchema === undefined ? undefined : this.#fold(defaultSchema)
  }

  /** The names of a Knex client: its dialect and the schema unqualified names resolve to. */
  static of (client: { dialect?: string, searchPath?: unknown }): TableNames {
    if (client.dialect === 'sqlite3') return new TableNames('sqlite', 'main')
    if (client.dialect !== 'postgresql') return new TableNames('other', undefined)
    const path = client.searchPath
    const first = Array.isArray(path) ? path[0] : path
    return new TableNames('postgresql', typeof first === 'string' && first !== '' ? first : 'public')
  }

  /** The key of a table reference. */
  key (ref: TableRef): string {
    const name = this.#fold(ref.name)
    const schema = ref.schema === undefined ? undefined : this.#fold(ref.schema)
    return schema === undefined || schema === this.defaultSchema ? name : `${schema}.${name}`
  }

  /** The key of a route's `model`, or of a table string as Knex takes it. */
  ofString (table: string): string | undefined {
    const ref = parseTableRef(table)
    return ref === undefined ? undefined : this.key(ref)
  }

  /** The key of the table a query builder writes (see builderTableRef). */
  ofBuilder (single: { table?: unknown, schema?: unknown }): string | undefined {
    const ref = builderTableRef(single)
    return ref === undefined ? undefined : this.key(ref)
  }

  /** The parts of a key: `audit.tasks` → audit, tasks; `tasks` → the default schema, tasks. */
  split (key: string): TableRef {
    const dot = key.indexOf('.')
    return dot === -1 ? { schema: this.defaultSchema, name: key } : { schema: key.slice(0, dot), name: key.slice(dot + 1) }
  }

  #fold (name: string): string {
    return this.dialect === 'sqlite' ? name.replace(/[A-Z]+/g, (letters) => letters.toLowerCase()) : name
  }
}
