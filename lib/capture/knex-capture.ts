/**
 * Captures query-builder writes made through one Knex instance, with the rows
 * they touched, and hands them over once committed.
 *
 * Knex has no model hooks and its events cannot tell commit from rollback, so
 * the capture sits where every statement passes: the client's `query` method.
 * It is installed by giving this one Knex client a prototype of its own (Knex
 * builds transaction clients from `client.constructor.prototype`), so other
 * Knex instances in the process are untouched and `uninstall` restores it.
 */
import type { Knex } from 'knex'
import type { ChangeEvent } from '../bus/bus.js'
import type { Row, WriteOp } from '../types.js'
import { tick, type CommitWindow } from './local-sequence.js'
import { TransactionLog, classifyStatement } from './transaction-log.js'

const kWrite = Symbol('fastify-rest-live.write')

type Dialect = 'postgresql' | 'sqlite' | 'unsupported'

interface CompiledQuery {
  sql: string
  bindings?: unknown[]
  method?: string
  returning?: unknown
  response?: unknown
  context?: { lastID?: unknown, changes?: number }
  [kWrite]?: { table: string, op: WriteOp, pk: string }
}

/** The parts of Knex's (untyped) client and builder internals the capture touches. */
interface KnexClientInternals {
  dialect?: string
  query: (this: KnexClientInternals, connection: object, query: CompiledQuery | string) => Promise<CompiledQuery>
  runner: (this: KnexClientInternals, builder: BuilderInternals) => RunnerInternals
  _query: (this: KnexClientInternals, connection: object, query: CompiledQuery) => Promise<CompiledQuery>
}
interface BuilderInternals {
  _method?: string
  _single?: { table?: unknown }
}
interface RunnerInternals {
  query: (query: CompiledQuery) => Promise<unknown>
}

export interface CaptureOptions {
  knex: Knex
  /** The primary key of a table some realtime route follows, or undefined to ignore the table. */
  trackedPk: (table: string) => string | undefined
  /** Committed changes, in commit order. */
  publish: (events: ChangeEvent[], window: CommitWindow) => void
}

const writeOps: Record<string, WriteOp> = { insert: 'insert', update: 'update', del: 'delete' }

/** `'tasks as t'` → `'tasks'`; `'public.tasks'` → `'tasks'`. */
function tableName (table: unknown): string | undefined {
  if (typeof table !== 'string') return undefined
  const name = table.trim().split(/\s+/)[0] as string
  return (name.split('.').pop() as string).replace(/["`]/g, '')
}

export class KnexCapture {
  readonly #client: KnexClientInternals
  readonly #original: KnexClientInternals
  readonly #dialect: Dialect
  readonly #log: TransactionLog
  readonly #trackedPk: CaptureOptions['trackedPk']

  constructor (options: CaptureOptions) {
    this.#client = options.knex.client as unknown as KnexClientInternals
    this.#original = Object.getPrototypeOf(this.#client) as KnexClientInternals
    const dialect = this.#client.dialect
    this.#dialect = dialect === 'postgresql' ? 'postgresql' : dialect === 'sqlite3' ? 'sqlite' : 'unsupported'
    this.#log = new TransactionLog(options.publish)
    this.#trackedPk = options.trackedPk
  }

  install (): void {
    const capture = this
    const original = this.#original
    const prototype = Object.create(original) as KnexClientInternals & { constructor: unknown }
    // Knex only reads `client.constructor.prototype` (to build transaction clients)
    prototype.constructor = { prototype }

    prototype.runner = function runner (builder) {
      const runner = original.runner.call(this, builder)
      capture.#tagWrite(runner, builder)
      return runner
    }
    prototype.query = function query (connection, compiled) {
      return capture.#query(this, connection, compiled)
    }
    Object.setPrototypeOf(this.#client, prototype)
  }

  uninstall (): void {
    Object.setPrototypeOf(this.#client, this.#original)
  }

  /** Marks the compiled queries of a tracked write so `#query` can capture their rows. */
  #tagWrite (runner: RunnerInternals, builder: BuilderInternals): void {
    const op = builder._method === undefined ? undefined : writeOps[builder._method]
    if (op === undefined) return
    const table = tableName(builder._single?.table)
    const pk = table === undefined ? undefined : this.#trackedPk(table)
    if (table === undefined || pk === undefined) return
    const query = runner.query
    runner.query = function taggedQuery (compiled) {
      if (typeof compiled === 'object' && compiled !== null) compiled[kWrite] = { table, op, pk }
      return query.call(this, compiled)
    }
  }

  async #query (client: KnexClientInternals, connection: object, compiled: CompiledQuery | string): Promise<CompiledQuery> {
    const original = this.#original
    if (typeof compiled === 'object' && compiled[kWrite]) return await this.#write(client, connection, compiled)
    const sql = typeof compiled === 'string' ? compiled : compiled.sql
    const statement = classifyStatement(sql)
    if (statement === undefined) return await original.query.call(client, connection, compiled)
    try {
      const sentAt = tick()
      const result = await original.query.call(client, connection, compiled)
      this.#log.apply(connection, statement, { sentAt, receivedAt: tick() })
      return result
    } catch (err) {
      if (statement === 'commit') this.#log.discard(connection)
      throw err
    }
  }

  /**
   * Runs a tracked write so that it reports the rows it touched. Where the user
   * asked for no RETURNING, one is added and the response is put back into the
   * shape Knex expects, so the caller sees exactly what it would have.
   */
  async #write (client: KnexClientInternals, connection: object, compiled: CompiledQuery): Promise<CompiledQuery> {
    const original = this.#original
    const { table, op, pk } = compiled[kWrite]!
    // Knex's SQLite compiler drops RETURNING on delete; SQLite itself supports it
    const userReturning = compiled.returning !== undefined && compiled.returning !== null &&
      !(this.#dialect === 'sqlite' && op === 'delete')

    const sentAt = tick()
    if (this.#dialect === 'unsupported') {
      const result = await original.query.call(client, connection, compiled)
      this.#log.record(connection, { model: table, op, rows: null }, { sentAt, receivedAt: tick() })
      return result
    }

    if (userReturning) {
      const result = await original.query.call(client, connection, compiled)
      const rows = this.#responseRows(result)
      this.#log.record(connection, { model: table, op, rows: rows.every((row) => pk in row) ? rows : null }, { sentAt, receivedAt: tick() })
      return result
    }

    compiled.sql = `${compiled.sql} returning *`
    const result = await original.query.call(client, connection, compiled)
    const window = { sentAt, receivedAt: tick() }
    const rows = this.#responseRows(result)
    if (this.#dialect === 'postgresql') {
      // without RETURNING, pg would have sent no rows; rowCount is unchanged
      (result.response as { rows: Row[] }).rows = []
    } else {
      let lastID: unknown = 0
      if (op === 'insert') {
        const last = await original._query.call(client, connection, { sql: 'select last_insert_rowid() as id', bindings: [] })
        lastID = (last.response as Array<{ id: unknown }>)[0]?.id
      }
      result.response = { changes: rows.length, lastInsertRowid: lastID }
      result.context = { lastID, changes: rows.length }
    }
    if (rows.length > 0) this.#log.record(connection, { model: table, op, rows }, window)
    return result
  }

  /** The rows of a RETURNING answer: an array from SQLite, a result with `rows` from pg. */
  #responseRows (result: CompiledQuery): Row[] {
    const response = result.response
    return Array.isArray(response) ? response as Row[] : (response as { rows: Row[] }).rows
  }
}
