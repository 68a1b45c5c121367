/**
 * Holds captured writes until the database has committed them.
 *
 * Keyed by the driver connection: a connection runs one transaction at a time,
 * and its savepoints nest as a stack of named levels. Following the statements
 * the connection actually ran (BEGIN, SAVEPOINT, RELEASE, ROLLBACK TO, COMMIT,
 * ROLLBACK) makes the log agree with the database by construction, whichever
 * Knex API (or raw statement) drove the transaction. Savepoints are found by
 * name, as the database finds them:
 *
 *   SAVEPOINT a; insert 1; SAVEPOINT b; insert 2; ROLLBACK TO SAVEPOINT a
 *   → both inserts are undone (every level above `a` is gone, `a` stays, empty)
 *   SAVEPOINT a; insert 1; SAVEPOINT b; insert 2; RELEASE a
 *   → both inserts now belong to the level below `a`
 *
 * A name repeated on the stack means its most recent (innermost) savepoint.
 *
 * Bounded: a transaction holds at most `maxRows` rows across its statements. A
 * write that would pass it is held without rows ("re-read the table"), so a
 * million-row update costs the views a re-read, not the process a million rows.
 */
import type { Row, WriteOp } from '../types.js'
import type { CommitWindow } from './commit-clock.js'

/** One captured write, held until its transaction commits. */
export interface CapturedWrite {
  /** The table's key (see table-names.ts). */
  table: string
  op: WriteOp
  /** The rows as the write returned them; null when unknown (every view of the table is re-read). */
  rows: Row[] | null
  /** Columns an update set, when known (for ON UPDATE foreign key actions). */
  columns: string[] | null
  /** Whether it may have been an update of existing rows (an update, or an insert … on conflict merge). */
  updates: boolean
}

export type ControlKind = 'begin' | 'savepoint' | 'release' | 'rollbackTo' | 'commit' | 'rollback'

export interface ControlStatement {
  kind: ControlKind
  /** The savepoint's name as the database compares it (SAVEPOINT, RELEASE, ROLLBACK TO). */
  name?: string | undefined
  /** COMMIT AND CHAIN / ROLLBACK AND CHAIN: a new transaction starts at once. */
  chain?: boolean
}

export type SavepointDialect = 'postgresql' | 'sqlite' | 'other'

// an identifier: "quoted" ("" escapes a quote), `quoted`, [quoted], 'quoted' (SQLite) or bare
const IDENT = String.raw`("(?:[^"]|"")*"|\x60(?:[^\x60]|\x60\x60)*\x60|\[[^\]]*\]|'(?:[^']|'')*'|[^\s;"'\x60\[]+)\s*;?\s*$`
const patterns: Array<[RegExp, ControlKind, RegExp?]> = [
  [/^\s*(BEGIN|START\s+TRANSACTION)\b/i, 'begin'],
  [/^\s*SAVEPOINT\b/i, 'savepoint', new RegExp(String.raw`^\s*SAVEPOINT\s+${IDENT}`, 'i')],
  [/^\s*RELEASE\b/i, 'release', new RegExp(String.raw`^\s*RELEASE\s+(?:SAVEPOINT\s+)?${IDENT}`, 'i')],
  [/^\s*ROLLBACK\s+((TRANSACTION|WORK)\s+)?TO\b/i, 'rollbackTo', new RegExp(String.raw`^\s*ROLLBACK\s+(?:(?:TRANSACTION|WORK)\s+)?TO\s+(?:SAVEPOINT\s+)?${IDENT}`, 'i')],
  [/^\s*(COMMIT|END)\b/i, 'commit'],
  [/^\s*(ROLLBACK|ABORT)\b/i, 'rollback']
]
// `AND NO CHAIN` does not match: NO stands between AND and CHAIN
const CHAIN = /\bAND\s+CHAIN\s*;?\s*$/i

/**
 * What a statement does to the connection's transaction, if anything.
 * `SAVEPOINT MyPoint` is `mypoint` in PostgreSQL (unquoted names fold to lower
 * case, quoted ones do not; names are cut at 63 bytes) and in SQLite (which
 * compares savepoint names without regard to ASCII case, quoted or not). A
 * name that cannot be read (`SAVEPOINT a; SELECT 1`) is undefined: the log
 * then knows a savepoint exists but not which.
 */
export function classifyStatement (sql: string, dialect: SavepointDialect): ControlStatement | undefined {
  for (const [pattern, kind, named] of patterns) {
    if (!pattern.test(sql)) continue
    if (named === undefined) return kind === 'begin' ? { kind } : { kind, chain: CHAIN.test(sql) }
    const name = named.exec(sql)?.[1]
    return { kind, name: name === undefined ? undefined : savepointName(name, dialect) }
  }
  return undefined
}

function savepointName (raw: string, dialect: SavepointDialect): string {
  const first = raw[0]
  const quoted = first === '"' || first === '`' || first === '[' || first === "'"
  let name = quoted ? raw.slice(1, -1) : raw
  if (first === '"') name = name.replace(/""/g, '"')
  else if (first === '`') name = name.replace(/``/g, '`')
  else if (first === "'") name = name.replace(/''/g, "'")
  if (dialect === 'sqlite' || (dialect === 'postgresql' && !quoted)) name = name.replace(/[A-Z]+/g, (letters) => letters.toLowerCase())
  if (dialect === 'postgresql') name = truncateBytes(name, 63)
  return name
}

/** PostgreSQL cuts identifiers at NAMEDATALEN - 1 bytes, on a character boundary. */
function truncateBytes (name: string, bytes: number): string {
  if (Buffer.byteLength(name) <= bytes) return name
  let out = ''
  for (const char of name) {
    if (Buffer.byteLength(out + char) > bytes) break
    out += char
  }
  return out
}

interface Level {
  /** The savepoint that opened the level; undefined for a BEGIN. */
  name: string | undefined
  writes: CapturedWrite[]
  /** Rows its writes hold. */
  rows: number
}

export class TransactionLog {
  readonly #open = new WeakMap<object, Level[]>()
  readonly #publish: (writes: CapturedWrite[], window: CommitWindow) => void
  readonly #maxRows: () => number
  /** The most rows one transaction (or one write outside one) has held: never more than `maxRows`. */
  mostRowsHeld = 0

  /** `maxRows` is asked at each write: the capture's registrations may come and go. */
  constructor (publish: (writes: CapturedWrite[], window: CommitWindow) => void, maxRows: () => number = () => Infinity) {
    this.#publish = publish
    this.#maxRows = maxRows
  }

  /** A write succeeded on this connection: hold it if a transaction is open, else it is committed already. */
  record (connection: object, write: CapturedWrite, window: CommitWindow): void {
    const levels = this.#open.get(connection)
    let held = 0
    // a few levels (the savepoint depth), each with its count
    if (levels) for (const level of levels) held += level.rows
    const kept = write.rows !== null && held + write.rows.length > this.#maxRows() ? { ...write, rows: null } : write
    const rows = kept.rows?.length ?? 0
    this.mostRowsHeld = Math.max(this.mostRowsHeld, held + rows)
    if (!levels) return this.#publish([kept], window)
    const top = levels[levels.length - 1] as Level
    top.writes.push(kept)
    top.rows += rows
  }

  /** A transaction-control statement succeeded on this connection. */
  apply (connection: object, statement: ControlStatement, window: CommitWindow): void {
    const levels = this.#open.get(connection)
    switch (statement.kind) {
      case 'begin':
        // PostgreSQL answers a BEGIN inside a transaction with a warning and keeps the transaction
        if (!levels) this.#open.set(connection, [{ name: undefined, writes: [], rows: 0 }])
        return
      case 'savepoint':
        // outside a transaction (SQLite), a savepoint starts one
        if (levels) levels.push({ name: statement.name, writes: [], rows: 0 })
        else this.#open.set(connection, [{ name: statement.name, writes: [], rows: 0 }])
        return
      case 'release': {
        /* c8 ignore next: the database refuses RELEASE outside a transaction */
        if (!levels) return
        const index = this.#find(levels, statement.name)
        // releasing the savepoint that opened the transaction (SQLite) commits it
        if (index === 0) return this.apply(connection, { kind: 'commit' }, window)
        // a savepoint the log cannot name: its writes stay where they are, to be published or rolled back with the transaction
        if (index === undefined) return
        // the savepoint's writes, and those of every savepoint above it, now belong to the enclosing level
        const enclosing = levels[index - 1] as Level
        // one by one: a spread of a long transaction's writes would overflow the call stack
        for (const level of levels.splice(index)) {
          for (const write of level.writes) enclosing.writes.push(write)
          enclosing.rows += level.rows
        }
        return
      }
      case 'rollbackTo': {
        /* c8 ignore next: the database refuses ROLLBACK TO outside a transaction */
        if (!levels) return
        const index = this.#find(levels, statement.name)
        if (index === undefined) {
          // a savepoint the log never saw: it cannot tell what was undone, so whatever the
          // transaction wrote is re-read from the database once it commits
          const uncertain = uncertainWrites(levels)
          levels.splice(1)
          levels[0] = { name: (levels[0] as Level).name, writes: uncertain, rows: 0 }
          return
        }
        // the savepoint survives ROLLBACK TO (it can be rolled back to again, or released)
        levels.splice(index + 1)
        levels[index] = { name: (levels[index] as Level).name, writes: [], rows: 0 }
        return
      }
      case 'commit':
        this.#open.delete(connection)
        if (levels) this.#publish(levels.flatMap((level) => level.writes), window)
        break
      case 'rollback':
        this.#open.delete(connection)
    }
    if (statement.chain === true) this.#open.set(connection, [{ name: undefined, writes: [], rows: 0 }])
  }

  /** A COMMIT failed, or the connection died: nothing it held was committed. */
  discard (connection: object): void {
    this.#open.delete(connection)
  }

  /** The innermost level opened by a savepoint of this name. */
  #find (levels: Level[], name: string | undefined): number | undefined {
    if (name === undefined) return undefined
    for (let index = levels.length - 1; index >= 0; index--) {
      if ((levels[index] as Level).name === name) return index
    }
    return undefined
  }
}

/** One "re-read the table" write per table and kind of write the transaction made so far. */
function uncertainWrites (levels: Level[]): CapturedWrite[] {
  const seen = new Map<string, CapturedWrite>()
  for (const write of levels.flatMap((level) => level.writes)) {
    const key = `${write.op}\u0000${write.table}`
    if (!seen.has(key)) seen.set(key, { table: write.table, op: write.op, rows: null, columns: null, updates: write.updates })
  }
  return [...seen.values()]
}
