/**
 * Changes the database makes by itself: foreign key actions.
 *
 * `ON DELETE CASCADE`, `SET NULL`, `SET DEFAULT` and their `ON UPDATE` twins
 * change child rows that no RETURNING reports: deleting a project deletes its
 * tasks, and a live task list must lose them. The foreign keys of followed
 * tables, and of the tables above them, are read once at startup; a committed
 * write to a parent (a delete, or an update of a referenced column) then makes
 * every view of the affected child models re-read from the database.
 *
 *   tasks.project_id → projects(id) ON DELETE CASCADE, route follows tasks
 *   delete from projects where id = 7   →  tasks views are re-checked: DELETED for its tasks
 *
 * Chains are followed upwards (comments → tasks → projects: deleting a project
 * re-checks comment views). Only actions that change rows count: NO ACTION and
 * RESTRICT make the parent's write fail instead. SQLite runs the actions only
 * with `pragma foreign_keys = on` on the connection; without it the re-check
 * finds nothing changed.
 */
import type { Knex } from 'knex'
import type { TableNames } from './table-names.js'
import type { PendingWrite } from './knex-capture.js'

export interface ForeignKey {
  /** The key of the referencing (child) table. */
  child: string
  /** The key of the referenced (parent) table. */
  parent: string
  /** Deleting a parent row changes child rows (CASCADE, SET NULL, SET DEFAULT). */
  onDelete: boolean
  /** Updating a referenced column changes child rows. */
  onUpdate: boolean
  /** The parent's referenced columns; null when unknown (SQLite's implicit reference to the primary key). */
  parentColumns: string[] | null
}

const PG_ACTIONS = new Set(['c', 'n', 'd'])
const SQLITE_ACTIONS = new Set(['CASCADE', 'SET NULL', 'SET DEFAULT'])

/** Every foreign key of the database whose actions change rows (PostgreSQL: one catalogue query). */
async function pgForeignKeys (knex: Knex, names: TableNames): Promise<(table: string) => Promise<ForeignKey[]>> {
  const result = await knex.raw(`
    select cn.nspname as child_schema, c.relname as child_table,
           pn.nspname as parent_schema, p.relname as parent_table,
           k.confdeltype::text as on_delete, k.confupdtype::text as on_update,
           (select json_agg(a.attname::text) from pg_attribute a
             where a.attrelid = k.confrelid and a.attnum = any (k.confkey)) as parent_columns
      from pg_constraint k
      join pg_class c on c.oid = k.conrelid join pg_namespace cn on cn.oid = c.relnamespace
      join pg_class p on p.oid = k.confrelid join pg_namespace pn on pn.oid = p.relnamespace
     where k.contype = 'f' and (k.confdeltype in ('c', 'n', 'd') or k.confupdtype in ('c', 'n', 'd'))`) as { rows: Array<Record<string, string>> }
  const byChild = new Map<string, ForeignKey[]>()
  for (const row of result.rows) {
    const child = names.key({ schema: row.child_schema, name: row.child_table as string })
    const keys = byChild.get(child) ?? []
    keys.push({
      child,
      parent: names.key({ schema: row.parent_schema, name: row.parent_table as string }),
      onDelete: PG_ACTIONS.has(row.on_delete as string),
      onUpdate: PG_ACTIONS.has(row.on_update as string),
      parentColumns: row.parent_columns as unknown as string[]
    })
    byChild.set(child, keys)
  }
  return async (table) => byChild.get(table) ?? []
}

type PragmaRow = Record<string, string | number | null>

/** The foreign keys of one SQLite table (`pragma foreign_key_list`), within its database. */
function sqliteForeignKeys (knex: Knex, names: TableNames): (table: string) => Promise<ForeignKey[]> {
  return async (table) => {
    const { schema, name } = names.split(table)
    const rows = await knex.raw('select id, "table" as parent, "to", on_update, on_delete from pragma_foreign_key_list(?, ?)', [name, schema as string]) as PragmaRow[]
    // one row per column: a composite key is several rows with one id
    const byId = new Map<unknown, PragmaRow[]>()
    for (const row of rows) byId.set(row.id, [...(byId.get(row.id) ?? []), row])
    const keys: ForeignKey[] = []
    for (const group of byId.values()) {
      const first = group[0] as PragmaRow
      const onDelete = SQLITE_ACTIONS.has(first.on_delete as string)
      const onUpdate = SQLITE_ACTIONS.has(first.on_update as string)
      if (!onDelete && !onUpdate) continue
      const to = group.map((row) => row.to as string | null)
      // `references parents` without columns names the parent's primary key: which columns is not said
      keys.push({ child: table, parent: names.key({ schema, name: first.parent as string }), onDelete, onUpdate, parentColumns: to.includes(null) ? null : to as string[] })
    }
    return keys
  }
}

/** One way a write to a parent table reaches a followed table. */
interface Reach {
  /** The followed table whose views must be re-checked. */
  followed: string
  key: ForeignKey
}

/** Which followed tables a committed write may have changed through foreign key actions. */
export class Cascades {
  readonly #byParent = new Map<string, Reach[]>()

  /**
   * Walks up from each followed table through foreign keys with actions: a
   * write to any table on the way can change the followed table's rows.
   */
  static async read (knex: Knex, names: TableNames, followed: string[]): Promise<Cascades> {
    const cascades = new Cascades()
    if (names.dialect === 'other') return cascades
    const keysOf = names.dialect === 'postgresql' ? await pgForeignKeys(knex, names) : sqliteForeignKeys(knex, names)
    for (const table of followed) {
      const seen = new Set([table])
      const queue = [table]
      for (let child = queue.shift(); child !== undefined; child = queue.shift()) {
        for (const key of await keysOf(child)) {
          const reaches = cascades.#byParent.get(key.parent) ?? []
          reaches.push({ followed: table, key })
          cascades.#byParent.set(key.parent, reaches)
          if (!seen.has(key.parent)) {
            seen.add(key.parent)
            queue.push(key.parent)
          }
        }
      }
    }
    return cascades
  }

  /**
   * The followed tables this write may have changed: a delete reaches children
   * with ON DELETE actions, an update (or an upsert) those with ON UPDATE
   * actions on a column it set (any column, when the columns are unknown).
   */
  affected (write: PendingWrite): string[] {
    const out = new Set<string>()
    for (const { followed, key } of this.#byParent.get(write.table) ?? []) {
      const byDelete = write.op === 'delete' && key.onDelete
      const byUpdate = write.updates && key.onUpdate &&
        (write.columns === null || key.parentColumns === null || key.parentColumns.some((column) => write.columns?.includes(column)))
      if (byDelete || byUpdate) out.add(followed)
    }
    return [...out]
  }
}
