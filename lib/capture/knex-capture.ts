/**
 * Captures query-builder writes made through one Knex instance, with the rows
 * they touched, and hands them over once committed.
 *
 * Knex has no model hooks and its events cannot tell commit from rollback, so
 * the capture sits where every statement passes: the client's `query` method,
 * wrapped for this one Knex client only (lib/knex/internals.ts, the one place
 * that touches Knex's internals), so other Knex instances in the process are
 * untouched and uninstalling restores it.
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
import { changedCount, clientOf, commandOf, dialectName, interceptClient, responseRows, searchPathOf, withReturnedRows, withoutReturnedRows, type BuilderParts, type ClientCall, type QueryObject } from '../knex/internals.js'
import type { Row, WriteOp } from '../types.js'
import { CommitClock, type CommitWindow } from './commit-clock.js'
import { TableNames } from './table-names.js'
import { TransactionLog, classifyStatement, type CapturedWrite, type ControlStatement, type SavepointDialect } from './transaction-log.js'

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
  /** Most rows a transaction may hold for this registration (its `maxCapturedRows`). */
  readonly maxCapturedRows: number
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

/** Where the capture lives on a Knex client (see kCapture). */
interface CapturedClient {
  [kCapture]?: unknown
}

const writeOps: Record<string, WriteOp> = { insert: 'insert', update: 'update', del: 'delete', truncate: 'delete' }

export class KnexCapture {
  /** This node's clock for the commits of this Knex instance (see commit-clock.ts). */
  readonly clock = new CommitClock()
  /** How tables of this Knex instance are named (see table-names.ts). */
  readonly names: TableNames
  readonly dialect: Dialect
  readonly #knex: Knex
  readonly #log: TransactionLog
  readonly #targets = new Set<CaptureTarget>()
  /** The fewest rows any attached target lets a transaction hold: one log serves them all. */
  #maxRows = Infinity
  /** Puts the client back as it was; set while some target is attached. */
  #uninstall: (() => void) | undefined

  /** The capture of this Knex instance, made on first use. */
  static of (knex: Knex): KnexCapture {
    const client = clientOf(knex) as CapturedClient
    const existing = client[kCapture]
    if (existing instanceof KnexCapture) return existing
    if (existing !== undefined) throw new KnexCapturedElsewhereError()
    const capture = new KnexCapture(knex)
    Object.defineProperty(client, kCapture, { value: capture, configurable: true, enumerable: false, writable: false })
    return capture
  }

  private constructor (knex: Knex) {
    this.#knex = knex
    const client = clientOf(knex)
    const dialect = dialectName(client)
    this.dialect = dialect === 'postgresql' ? 'postgresql' : dialect === 'sqlite3' ? 'sqlite' : 'unsupported'
    this.names = TableNames.of({ dialect, searchPath: searchPathOf(client) })
    this.#log = new TransactionLog((writes, window) => { this.#committed(writes, window) }, () => this.#maxRows)
  }

  /** Starts handing `target` every committed write it is interested in; returns the function that stops it. */
  attach (target: CaptureTarget): () => void {
    if (this.#targets.size === 0) {
      this.#uninstall = interceptClient<WriteTag>(this.#knex, {
        tag: (builder) => this.#tagWrite(builder),
        query: async (connection, query, tag, call) => await this.#query(connection, query, tag, call)
      })
    }
    this.#targets.add(target)
    this.#maxRows = Math.min(this.#maxRows, target.maxCapturedRows)
    return () => {
      if (!this.#targets.delete(target)) return
      this.#maxRows = Math.min(...[...this.#targets].map((left) => left.maxCapturedRows))
      if (this.#targets.size > 0) return
      ;(this.#uninstall as () => void)()
      delete (clientOf(this.#knex) as CapturedClient)[kCapture]
    }
  }

  /** The most rows one transaction (or one write outside one) has held so far: at most the smallest `maxCapturedRows`. */
  get mostRowsHeld (): number {
    return this.#log.mostRowsHeld
  }

  /** The tag of a write some target needs, so `#query` captures its statements; undefined for the rest. */
  #tagWrite (builder: BuilderParts): WriteTag | undefined {
    const method = builder.method
    const op = method === undefined ? undefined : writeOps[method]
    if (op === undefined) return undefined
    const single = builder.single
    const table = this.names.ofBuilder(single)
    if (table === undefined) return undefined
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
    if (!rows && !changes) return undefined
    return { ...pending, rows, opaque: method === 'truncate' }
  }

  async #query (connection: object, compiled: QueryObject | string, tag: WriteTag | undefined, call: ClientCall): Promise<QueryObject> {
    if (tag !== undefined) return await this.#write(connection, compiled as QueryObject, tag, call)
    const sql = typeof compiled === 'string' ? compiled : compiled.sql
    const statement = classifyStatement(sql, savepointDialect[this.dialect])
    if (statement === undefined) return await call.run(compiled)
    const sentAt = this.clock.tick()
    let result: QueryObject
    try {
      result = await call.run(compiled)
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
  async #write (connection: object, compiled: QueryObject, tag: WriteTag, call: ClientCall): Promise<QueryObject> {
    const write = (rows: Row[] | null): CapturedWrite => ({ table: tag.table, op: tag.op, rows, columns: tag.columns, updates: tag.updates })
    const sentAt = this.clock.tick()

    if (!tag.rows || tag.opaque || this.dialect === 'unsupported') {
      // run as written: the rows are unknown, at most how many changed
      const result = await call.run(compiled)
      const window = { sentAt, receivedAt: this.clock.tick() }
      if (tag.opaque || changedCount(result) !== 0) this.#log.record(connection, write(null), window)
      return result
    }

    // Knex's SQLite compiler drops RETURNING on delete; SQLite itself supports it
    const userReturning = compiled.returning !== undefined && compiled.returning !== null &&
      !(this.dialect === 'sqlite' && tag.op === 'delete')
    if (userReturning) {
      const asked = askedColumns(compiled, this.dialect)
      if (asked !== undefined) {
        // the caller's columns, then the whole row: its columns still fail as they would, and the views get the row whole
        compiled.sql = `${compiled.sql}, *`
        const result = await call.run(compiled)
        const window = { sentAt, receivedAt: this.clock.tick() }
        const rows = responseRows<Row>(result)
        withReturnedRows(result, rows.map((row) => pick(row, asked)))
        if (rows.length > 0) this.#log.record(connection, write(rows), window)
        return result
      }
      // a column list the capture cannot take apart again (`*`, an alias, a qualified name, raw SQL): run as written
      const result = await call.run(compiled)
      const window = { sentAt, receivedAt: this.clock.tick() }
      const rows = responseRows<Row>(result)
      if (rows.length > 0) this.#log.record(connection, write(rows), window)
      return result
    }

    compiled.sql = `${compiled.sql} returning *`
    const result = await call.run(compiled)
    const window = { sentAt, receivedAt: this.clock.tick() }
    const rows = responseRows<Row>(result)
    let lastID: unknown = 0
    if (this.dialect === 'sqlite' && tag.op === 'insert') {
      const last = await call.direct('select last_insert_rowid() as id')
      lastID = responseRows<{ id: unknown }>(last)[0]?.id
    }
    withoutReturnedRows(result, this.dialect, rows.length, lastID)
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

// a bare column name, which both dialects return under its own name; quoted by Knex without escapes
const PLAIN_COLUMN = /^[A-Za-z_][A-Za-z0-9_]*$/

/**
 * The columns a write's own RETURNING asks for, when each is a bare column name
 * and the statement ends with them as Knex compiles them (its query compilers:
 * ` returning "a", "b"` for PostgreSQL, backquotes for SQLite, last in the
 * statement on both; checked on 3.0.1 and 3.3.0). Anything else is undefined.
 */
export function askedColumns (compiled: QueryObject, dialect: 'postgresql' | 'sqlite'): string[] | undefined {
  const returning = compiled.returning
  const columns = typeof returning === 'string' ? [returning] : Array.isArray(returning) ? returning as unknown[] : []
  if (columns.length === 0 || !columns.every((column): column is string => typeof column === 'string' && PLAIN_COLUMN.test(column))) return undefined
  const quote = dialect === 'postgresql' ? '"' : '`'
  const clause = ` returning ${columns.map((column) => `${quote}${column}${quote}`).join(', ')}`
  return compiled.sql.endsWith(clause) ? columns : undefined
}

/** A row as the caller's RETURNING would have given it: its columns, in its order. */
function pick (row: Row, columns: string[]): Row {
  const out: Row = {}
  for (const column of columns) out[column] = row[column]
  return out
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
