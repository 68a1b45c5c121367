/**
 * Rows whose primary key is NULL (or missing) cannot be told apart by a
 * subscriber, who applies broadcasts by primary key: two of them would collapse
 * into one row. A SQLite table declared `id serial primary key` is the usual
 * cause (SQLite does not fill `serial` in, and lets a non-INTEGER primary key be
 * NULL). Such rows are never merged: they are left out of live views (a
 * captured write that returns one is re-checked from the database instead),
 * subscribing to a view that holds one is refused, and the table is reported
 * once, at error level, with the fix.
 */
import type { FastifyBaseLogger } from 'fastify'
import type { NamingDialect } from '../capture/table-names.js'
import type { RouteRegistry } from './route-registry.js'

/** Whether a primary-key value can identify a row. */
export function usableKey (value: unknown): boolean {
  return value !== null && value !== undefined
}

export class UnkeyedRows {
  readonly #reported = new Set<string>()
  readonly #log: FastifyBaseLogger
  readonly #registry: RouteRegistry
  readonly #dialect: NamingDialect

  constructor (log: FastifyBaseLogger, registry: RouteRegistry, dialect: NamingDialect) {
    this.#log = log
    this.#registry = registry
    this.#dialect = dialect
  }

  /** Logs, once per model, that rows of it came without a usable primary key. */
  report (model: string, seen: 'written' | 'read'): void {
    if (this.#reported.has(model)) return
    this.#reported.add(model)
    const pk = this.#registry.pkOf(model) as string
    const routes = this.#registry.forModel(model).map((route) => `GET ${route.url}`)
    const hint = this.#dialect === 'sqlite'
      ? `; in SQLite, declare it '${pk} integer primary key' (a '${pk} serial' column is never filled in and stays NULL)`
      : `, e.g. '${pk} serial primary key' or '${pk} integer generated always as identity primary key'`
    this.#log.error(
      { model, pk, routes },
      `fastify-rest-live: table '${model}' has rows ${seen} with a NULL primary key '${pk}', so subscribers could not tell them apart. ` +
      `Routes ${routes.join(', ')} leave such rows out of live views and refuse subscriptions to views that hold one. ` +
      `Give every row a unique, non-NULL '${pk}'${hint}; or set config.realtime.pk to a column that is one.`
    )
  }
}
