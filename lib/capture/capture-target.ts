/**
 * One registration of the plugin as the shared Knex capture sees it: which
 * writes it needs (the tables its routes follow, and their foreign-key parents),
 * and the change events each committed write means for its models.
 */
import type { FastifyBaseLogger } from 'fastify'
import type { Knex } from 'knex'
import type { LocalChangeEvent } from '../bus/bus.js'
import type { RouteRegistry } from '../registry/route-registry.js'
import { usableKey, type UnkeyedRows } from '../registry/unkeyed-rows.js'
import { Cascades } from './foreign-keys.js'
import type { CaptureTarget, CommittedWrite, KnexCapture, PendingWrite, WriteInterest } from './knex-capture.js'

export interface RegistrationTargetOptions {
  capture: KnexCapture
  registry: RouteRegistry
  unkeyed: UnkeyedRows
  log: FastifyBaseLogger
  /** The `maxCapturedRows` option. */
  maxCapturedRows: number
  /** Sends one event on this registration's bus. */
  publish: (event: LocalChangeEvent) => void
}

export class RegistrationTarget implements CaptureTarget {
  readonly #capture: KnexCapture
  readonly #registry: RouteRegistry
  readonly #unkeyed: UnkeyedRows
  readonly #log: FastifyBaseLogger
  readonly maxCapturedRows: number
  readonly #publish: (event: LocalChangeEvent) => void
  /** Foreign key actions reaching followed tables; empty until `ready`. */
  #cascades = new Cascades()

  constructor (options: RegistrationTargetOptions) {
    this.#capture = options.capture
    this.#registry = options.registry
    this.#unkeyed = options.unkeyed
    this.#log = options.log
    this.maxCapturedRows = options.maxCapturedRows
    this.#publish = options.publish
  }

  /**
   * At startup, once the routes are known: reads the foreign keys that reach
   * followed tables, and checks that unqualified table names mean what the
   * capture takes them to mean. A failure is logged, not fatal: live views then
   * miss only what foreign key actions change.
   */
  async ready (knex: Knex): Promise<void> {
    const names = this.#capture.names
    try {
      if (names.dialect === 'postgresql') {
        const { rows } = await knex.raw('select current_schema() as schema') as { rows: Array<{ schema: string | null }> }
        const current = rows[0]?.schema
        if (current !== names.defaultSchema) {
          this.#log.warn({ currentSchema: current, assumed: names.defaultSchema },
            `fastify-rest-live: unqualified table names resolve to schema '${String(current)}' on this connection, but are followed as tables of '${String(names.defaultSchema)}' (Knex's searchPath option, else public); set Knex's searchPath, or name tables with their schema in routes and writes`)
        }
      }
      this.#cascades = await Cascades.read(knex, names, this.#registry.tables())
    } catch (err) {
      this.#log.error({ err }, 'fastify-rest-live: reading foreign keys failed; rows that ON DELETE / ON UPDATE actions change will not be broadcast until a restart')
    }
  }

  interest (write: PendingWrite): WriteInterest {
    if (this.#registry.modelsOfTable(write.table).length > 0) return 'rows'
    return this.#cascades.affected(write).length > 0 ? 'changes' : undefined
  }

  committed (writes: CommittedWrite[]): void {
    for (const write of writes) {
      for (const model of this.#registry.modelsOfTable(write.table)) this.#publish(this.#event(model, write))
      // rows a foreign key action changed: re-read every view of the model
      for (const table of this.#cascades.affected(write)) {
        for (const model of this.#registry.modelsOfTable(table)) this.#publish({ model, op: write.op === 'delete' ? 'delete' : 'update', rows: null })
      }
    }
  }

  #event (model: string, write: CommittedWrite): LocalChangeEvent {
    const pk = this.#registry.pkOf(model) as string
    let rows = write.rows
    if (rows?.some((row) => !usableKey(row[pk])) === true) {
      // a RETURNING without the primary key (the views are re-read), or a NULL key (never merged: see unkeyed-rows.ts)
      if (rows.some((row) => pk in row && !usableKey(row[pk]))) this.#unkeyed.report(model, 'written')
      rows = null
    }
    const event: LocalChangeEvent = { model, op: write.op, rows }
    // rows carried whole from a commit that raced nothing: they may stand in for a read (commit-clock.ts)
    if (rows !== null && write.trustedSince !== undefined) event.trustedSince = write.trustedSince
    return event
  }
}
