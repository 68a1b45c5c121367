/**
 * Holds captured writes until the database has committed them.
 *
 * Keyed by the driver connection: a connection runs one transaction at a time,
 * and its savepoints nest as a stack. Following the statements the connection
 * actually ran (BEGIN, SAVEPOINT, RELEASE, ROLLBACK TO, COMMIT, ROLLBACK) makes
 * the log agree with the database by construction, whichever Knex API (or raw
 * statement) drove the transaction.
 */
import type { ChangeEvent } from '../bus/bus.js'
import type { CommitWindow } from './local-sequence.js'

export type ControlStatement = 'begin' | 'savepoint' | 'release' | 'rollbackTo' | 'commit' | 'rollback'

const patterns: Array<[RegExp, ControlStatement]> = [
  [/^\s*(BEGIN|START\s+TRANSACTION)\b/i, 'begin'],
  [/^\s*SAVEPOINT\b/i, 'savepoint'],
  [/^\s*RELEASE\b/i, 'release'],
  [/^\s*ROLLBACK\s+((TRANSACTION|WORK)\s+)?TO\b/i, 'rollbackTo'],
  [/^\s*(COMMIT|END)\b/i, 'commit'],
  [/^\s*(ROLLBACK|ABORT)\b/i, 'rollback']
]

export function classifyStatement (sql: string): ControlStatement | undefined {
  for (const [pattern, kind] of patterns) if (pattern.test(sql)) return kind
  return undefined
}

export class TransactionLog {
  readonly #open = new WeakMap<object, ChangeEvent[][]>()
  readonly #publish: (events: ChangeEvent[], window: CommitWindow) => void

  constructor (publish: (events: ChangeEvent[], window: CommitWindow) => void) {
    this.#publish = publish
  }

  /** A write succeeded on this connection: hold it if a transaction is open, else it is committed already. */
  record (connection: object, event: ChangeEvent, window: CommitWindow): void {
    const stack = this.#open.get(connection)
    if (stack) stack[stack.length - 1]?.push(event)
    else this.#publish([event], window)
  }

  /** A transaction-control statement succeeded on this connection. */
  apply (connection: object, statement: ControlStatement, window: CommitWindow): void {
    const stack = this.#open.get(connection)
    switch (statement) {
      case 'begin':
        this.#open.set(connection, [[]])
        return
      case 'savepoint':
        if (stack) stack.push([])
        else this.#open.set(connection, [[]])
        return
      case 'release': {
        /* c8 ignore next */
        if (!stack) return // the database refuses RELEASE outside a transaction
        // the savepoint's writes now belong to the enclosing level; releasing the
        // savepoint that opened the transaction (SQLite) commits it
        const released = stack.length > 1 ? stack.pop() : undefined
        if (released) stack[stack.length - 1]?.push(...released)
        else this.apply(connection, 'commit', window)
        return
      }
      case 'rollbackTo':
        // the savepoint survives ROLLBACK TO (it can be rolled back to again or
        // released): only the writes made since it are dropped
        if (stack) stack[stack.length - 1] = []
        return
      case 'commit':
        this.#open.delete(connection)
        if (stack) this.#publish(stack.flat(), window)
        return
      case 'rollback':
        this.#open.delete(connection)
    }
  }

  /** A COMMIT failed, or the connection died: nothing it held was committed. */
  discard (connection: object): void {
    this.#open.delete(connection)
  }
}
