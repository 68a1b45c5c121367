/**
 * Orders this node's captured writes against each other and against its
 * database reads, so a changed row carried by an event can stand in for a
 * database read only when it is provably the newest version.
 *
 * A logical clock ticks when a committing statement (COMMIT, or a write outside
 * a transaction) is sent and when its answer arrives: its commit window. If a
 * commit was sent after every earlier capture of the table had been answered,
 * nothing it raced can be newer, so its rows are trusted in memory. Overlapping
 * windows (a pool of connections committing at once: two answers can be handled
 * in either order), events from other nodes (pub/sub can deliver two nodes'
 * events about a row out of commit order), and captures whose commit was sent
 * before a database read that may have seen newer rows (a view's last read; any
 * re-read of an untrusted change of the model, since another node may have
 * written the row since) are re-checked against the database, batched. Either
 * way the last event about a row leaves every subscriber with its latest version.
 *
 * One instance per captured Knex instance (owned by its KnexCapture): every
 * registration of the plugin on that Knex instance sees the same commits, so
 * they share one clock. Nothing here is module-level.
 */
import type { ChangeEvent } from '../bus/bus.js'

export interface CommitWindow {
  sentAt: number
  receivedAt: number
}

/** What a view needs to stamp its reads. */
export interface ReadClock {
  /** The clock now: a read that starts now reflects every commit answered up to it. */
  current (): number
}

export class LocalSequence implements ReadClock {
  #clock = 0
  /** Events whose rows are trusted, with when their commit was sent. Keyed by object: events from other nodes are new objects. */
  readonly #trusted = new WeakMap<ChangeEvent, number>()
  /** Per table: when the last commit that wrote it was answered. */
  readonly #lastAnswered = new Map<string, number>()

  tick (): number {
    return ++this.#clock
  }

  current (): number {
    return this.#clock
  }

  /**
   * Records that a commit wrote `table`, in the order commits were answered;
   * returns when it was sent if its rows can be trusted, else undefined.
   * Call once per table and commit.
   */
  commit (table: string, window: CommitWindow): number | undefined {
    const previous = this.#lastAnswered.get(table) ?? 0
    this.#lastAnswered.set(table, Math.max(previous, window.receivedAt))
    return window.sentAt > previous ? window.sentAt : undefined
  }

  /** Marks an event built from a trusted commit (see `commit`). */
  stamp (event: ChangeEvent, sentAt: number): void {
    this.#trusted.set(event, sentAt)
  }

  /**
   * When a trusted event's commit was sent; undefined for any event whose rows
   * must be re-read. Its rows are newer than anything read from the database
   * before that moment, and older than nothing read after it was answered.
   */
  capturedSequence (event: ChangeEvent): number | undefined {
    return this.#trusted.get(event)
  }
}
