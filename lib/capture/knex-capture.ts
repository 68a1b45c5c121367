/**
 * Captures query-builder writes made through one Knex instance, with the rows
 * they touched, and hands them over once committed.
 *
 * Knex has no model hooks and its events cannot tell commit from rollback, so
 * the capture sits where every statement passes: the client's `query` method.
 * It is installed by giving this one Knex client a prototype of its own (Knex
 * builds transaction clients from `client.constructor.prototype`), so other
 * Knex instances in the process are untouched and uninstalling restores it.
 *
 * One capture per Knex instance, shared by every registration of the plugin
 * that uses it (a public and an admin socket in two encapsulated contexts):
 * a second wrapper would add a second `RETURNING *`. Each registration attaches
 * a target; the capture asks every target which writes it needs and hands each
 * one every committed write once. It is installed when the first target
 * attaches and uninstalled when the last one leaves.
 */
import type { Knex } from 'knex'
import { KnexCapturedElsewhereError } from '../errors.js'
import type { Row, WriteOp } from '../types.js'
import { CommitClock, type CommitWindow } from './commit-clock.js'
import { TableNames } from './table-names.js'
import { TransactionLog, classifyStatement, type CapturedWrite, type ControlStatement, type SavepointDialect } from './transaction-log.js'

const kWrite = Symbol('fastify-rest-live.write')
/**
 * Where a Knex client keeps its capture: a property of the client object
 * itself, so the capture lives exactly as long as the Knex instance and no
 * module holds a registry of instances. `Symbol.for` so that a second copy of
 * this package (another version in node_modules) finds it too, and refuses
 * instead of wrapping the client a second time.
 */
const kCapture = Symbol.for('fastify-rest-live.capture')

/** What a target needs of a write: its rows (a route follows the table), or only whether it changed rows (a foreign key). */
export type WriteInterest = 'rows' | 'changes' | undefined

/** A write about to run, as a target sees it when deciding its interest. */
export interface PendingWrite {
  table: string
  op: WriteOp
  columns: string[] | null
  updates: boolean
}

/** A committed write; `trustedSince` is the tick its commit was sent at, when its rows can stand in for a read (commit-clock.ts). */
export interface CommittedWrite extends CapturedWrite {
  trustedSince: number | undefined
}

/** One registration of the plugin, as the capture sees it. */
export interface CaptureTarget {
  interest (write: PendingWrite): WriteInterest
  /** Writes that committed together, in commit order. */
  committed (writes: CommittedWrite[]): void
}

interface WriteTag extends PendingWrite {
  /** Some target needs the rows: RETURNING is added when the user asked for none. */
  rows: boolean
  /** Run as written, rows unknown (TRUNCATE takes no RETURNING). */
  opaque: boolean
}

type Dialect = 'postgresql' | 'sqlite' | 'unsupported'

interface CompiledQuery {
  sql: string
  bindings?: unknown[]
  method?: string
  returning?: unknown
  response?: unknown
  context?: { lastID?: unknown, changes?: number }
  [kWrite]?: WriteTag
}

/** The parts of Knex's (untyped) client and builder internals the capture touches. */
interface KnexClientInternals {
  dialect?: string
  searchPath?: unknown
  query: (this: KnexClientInternals, connection: object, query: CompiledQuery | string) => Promise<CompiledQuery>
  runner: (this: KnexClientInternals, builder: BuilderInternals) => RunnerInternals
  _query: (this: KnexClientInternals, connection: object, query: CompiledQuery) => Promise<CompiledQuery>
  [kCapture]?: unknown
}
interface BuilderInternals {
  _method?: string
  _single: { table?: unknown, schema?: unknown, update?: unknown, counter?: unknown, onConflict?: unknown, merge?: unknown }
}
interface RunnerInternals {
  query: (query: CompiledQuery) => Promise<unknown>
}

const writeOps: Record<string, WriteOp> = { insert: 'insert', update: 'update', del: 'delete', truncate: 'delete' }

export class KnexCapture {
  /** This node's clock for the commits of this Knex instance (see commit-clock.ts). */
  readonly clock = new CommitClock()
  /** How tables of this Knex instance are named (see table-names.ts). */
  readonly names: TableNames
  readonly dialect: Dialect
  readonly #client: KnexClientInternals
  readonly #original: KnexClientInternals
  readonly #log: TransactionLog
  readonly #targets = new Set<CaptureTarget>()

  /** The capture of this Knex instance, made on first use. */
  static of (knex: Knex): KnexCapture {
    const client = knex.client as unknown as KnexClientInternals
    const existing = client[kCapture]
    if (existing instanceof KnexCapture) return existing
    if (existing !== undefined) throw new KnexCapturedElsewhereError()
    const capture = new KnexCapture(client)
    Object.defineProperty(client, kCapture, { value: capture, configurable: true, enumerable: false, writable: false })
    return capture
  }

  private constructor (client: KnexClientInternals) {
    this.#client = client
    this.#original = Object.getPrototypeOf(client) as KnexClientInternals
    const dialect = client.dialect
    this.dialect = dialect === 'postgresql' ? 'postgresql' : dialect === 'sqlite3' ? 'sqlite' : 'unsupported'
    this.names = TableNames.of(client)
    this.#log = new TransactionLog((writes, window) => { this.#committed(writes, window) })
  }

  /** Starts handing `target` every committed write it is interested in; returns the function that stops it. */
  attach (target: CaptureTarget): () => void {
    if (this.#targets.size === 0) this.#install()
    this.#targets.add(target)
    return () => {
      if (!this.#targets.delete(target) || this.#targets.size > 0) return
      Object.setPrototypeOf(this.#client, this.#original)
      delete this.#client[kCapture]
    }
  }

  #install (): void {
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

  /** Marks the compiled queries of a write some target needs so `#query` can capture it. */
  #tagWrite (runner: RunnerInternals, builder: BuilderInternals): void {
    const method = builder._method
    const op = method === undefined ? undefined : writeOps[method]
    if (op === undefined) return
    const single = builder._single
    const table = this.names.ofBuilder(single)
    if (table === undefined) return
    // an upsert may update the rows it conflicts with (its columns are not read: any ON UPDATE action counts)
    const updates = op === 'update' || (single.onConflict !== undefined && single.merge !== undefined)
    const set = op === 'update' ? single.update ?? single.counter : undefined
    const columns = set !== null && typeof set === 'object' ? Object.keys(set).map((column) => column.split('.').pop() as string) : null
    const pending: PendingWrite = { table, op, columns, updates }
    let rows = false
    let changes = false
    for (const target of this.#targets) {
      const interest = target.interest(pending)
      rows ||= interest === 'rows'
      changes ||= interest === 'changes'
    }
    if (!rows && !changes) return
    const tag: WriteTag = { ...pending, rows, opaque: method === 'truncate' }
    const query = runner.query
    runner.query = function taggedQuery (compiled) {
      if (typeof compiled === 'object' && compiled !== null) compiled[kWrite] = tag
      return query.call(this, compiled)
    }
  }

  async #query (client: KnexClientInternals, connection: object, compiled: CompiledQuery | string): Promise<CompiledQuery> {
    const original = this.#original
    if (typeof compiled === 'object' && compiled[kWrite]) return await this.#write(client, connection, compiled)
    const sql = typeof compiled === 'string' ? compiled : compiled.sql
    const statement = classifyStatement(sql, savepointDialect[this.dialect])
    if (statement === undefined) return await original.query.call(client, connection, compiled)
    const sentAt = this.clock.tick()
    let result: CompiledQuery
    try {
      result = await original.query.call(client, connection, compiled)
    } catch (err) {
      // a failed COMMIT ends a PostgreSQL transaction, while SQLite may keep it open (a deferred
      // foreign key still violated, a busy database): better-sqlite3 says which
      if (statement.kind === 'commit' && (connection as { inTransaction?: unknown }).inTransaction !== true) this.#log.discard(connection)
      throw err
    }
    // PostgreSQL answers COMMIT of a transaction a failed statement aborted with ROLLBACK
    const applied: ControlStatement = statement.kind === 'commit' && commandOf(result) === 'ROLLBACK' ? { ...statement, kind: 'rollback' } : statement
    this.#log.apply(connection, applied, { sentAt, receivedAt: this.clock.tick() })
    return result
  }

  /**
   * Runs a tracked write so that it reports the rows it touched. Where the user
   * asked for no RETURNING, one is added and the response is put back into the
   * shape Knex expects, so the caller sees exactly what it would have.
   */
  async #write (client: KnexClientInternals, connection: object, compiled: CompiledQuery): Promise<CompiledQuery> {
    const original = this.#original
    const tag = compiled[kWrite] as WriteTag
    const write = (rows: Row[] | null): CapturedWrite => ({ table: tag.table, op: tag.op, rows, columns: tag.columns, updates: tag.updates })
    const sentAt = this.clock.tick()

    if (!tag.rows || tag.opaque || this.dialect === 'unsupported') {
      // run as written: the rows are unknown, at most how many changed
      const result = await original.query.call(client, connection, compiled)
      const window = { sentAt, receivedAt: this.clock.tick() }
      if (tag.opaque || changedCount(result) !== 0) this.#log.record(connection, write(null), window)
      return result
    }

    // Knex's SQLite compiler drops RETURNING on delete; SQLite itself supports it
    const userReturning = compiled.returning !== undefined && compiled.returning !== null &&
      !(this.dialect === 'sqlite' && tag.op === 'delete')
    if (userReturning) {
      const result = await original.query.call(client, connection, compiled)
      const window = { sentAt, receivedAt: this.clock.tick() }
      const rows = responseRows(result)
      if (rows.length > 0) this.#log.record(connection, write(rows), window)
      return result
    }

    compiled.sql = `${compiled.sql} returning *`
    const result = await original.query.call(client, connection, compiled)
    const window = { sentAt, receivedAt: this.clock.tick() }
    const rows = responseRows(result)
    if (this.dialect === 'postgresql') {
      // without RETURNING, pg would have sent no rows; rowCount is unchanged
      (result.response as { rows: Row[] }).rows = []
    } else {
      let lastID: unknown = 0
      if (tag.op === 'insert') {
        const last = await original._query.call(client, connection, { sql: 'select last_insert_rowid() as id', bindings: [] })
        lastID = (last.response as Array<{ id: unknown }>)[0]?.id
      }
      result.response = { changes: rows.length, lastInsertRowid: lastID }
      result.context = { lastID, changes: rows.length }
    }
    if (rows.length > 0) this.#log.record(connection, write(rows), window)
    return result
  }

  /** Hands a commit to every target, each table's trust decided once (commit-clock.ts). */
  #committed (writes: CapturedWrite[], window: CommitWindow): void {
    const merged = coalesce(writes)
    const trust = new Map<string, number | undefined>()
    for (const write of merged) {
      if (!trust.has(write.table)) trust.set(write.table, this.clock.commit(write.table, window))
    }
    const committed = merged.map((write) => ({ ...write, trustedSince: trust.get(write.table) }))
    for (const target of this.#targets) target.committed(committed)
  }
}

const savepointDialect: Record<Dialect, SavepointDialect> = { postgresql: 'postgresql', sqlite: 'sqlite', unsupported: 'other' }

/**
 * Merges consecutive writes of one table and op (one transaction's rows travel
 * as one event). Rows and columns are appended in place to arrays the merged
 * write owns, never copied per statement: a transaction of n statements costs
 * O(total rows), not O(n × rows).
 */
function coalesce (writes: CapturedWrite[]): CapturedWrite[] {
  const out: CapturedWrite[] = []
  for (const write of writes) {
    const last = out[out.length - 1]
    if (last !== undefined && last.table === write.table && last.op === write.op &&
      (last.rows === null) === (write.rows === null) && (last.columns === null) === (write.columns === null)) {
      if (last.rows !== null) for (const row of write.rows as Row[]) last.rows.push(row)
      // two updates: the columns either set (what ON UPDATE actions are checked against); a table's few columns
      if (last.columns !== null) for (const column of write.columns as string[]) if (!last.columns.includes(column)) last.columns.push(column)
      last.updates ||= write.updates
    } else {
      // arrays of its own: the ones appended to above
      out.push({ ...write, rows: write.rows === null ? null : [...write.rows], columns: write.columns === null ? null : [...write.columns] })
    }
  }
  return out
}

/** The rows of a RETURNING answer: an array from SQLite, a result with `rows` from pg. */
function responseRows (result: CompiledQuery): Row[] {
  const response = result.response
  return Array.isArray(response) ? response as Row[] : (response as { rows: Row[] }).rows
}

/** How many rows a write changed, when the driver says (pg's rowCount, better-sqlite3's changes). */
function changedCount (result: CompiledQuery): number | undefined {
  const response = result.response as { rowCount?: number | null, changes?: number } | Row[]
  return Array.isArray(response) ? response.length : response.rowCount ?? response.changes
}

/** The command tag of a pg answer (`COMMIT`, `ROLLBACK`); undefined for SQLite. */
function commandOf (result: CompiledQuery): unknown {
  return (result.response as { command?: unknown } | undefined)?.command
}
