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

/** `'audit.tasks as t'` → `{ schema: 'audit', name: 'tasks' }`; quotes are dropped. */
export function parseTableRef (table: string): TableRef | undefined {
  // knex reads an alias after ` as ` (any case)
  const name = (table.split(/\s+as\s+/i)[0] as string).trim()
  const parts = name.split('.').map((part) => part.replace(/^["`[]|["`\]]$/g, ''))
  if (parts.length > 2 || parts.some((part) => part === '')) return undefined
  return parts.length === 2 ? { schema: parts[0], name: parts[1] as string } : { schema: undefined, name: parts[0] as string }
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

  /**
   * The key of the table a query builder writes: its `table` (a string, or an
   * object `{ alias: 'table' }`) and its `withSchema`.
   */
  ofBuilder (single: { table?: unknown, schema?: unknown }): string | undefined {
    let table = single.table
    if (table !== null && typeof table === 'object' && !Array.isArray(table) && Object.getPrototypeOf(table) === Object.prototype) {
      const values = Object.values(table)
      table = values.length === 1 ? values[0] : undefined
    }
    if (typeof table !== 'string') return undefined
    const ref = parseTableRef(table)
    if (ref === undefined) return undefined
    // withSchema('audit') qualifies a bare name
    return this.key({ schema: ref.schema ?? (typeof single.schema === 'string' ? single.schema : undefined), name: ref.name })
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
