/**
 * Orders this node's captured writes against each other and against its
 * database reads, so a changed row carried by an event can stand in for a
 * database read only when it is provably the newest version.
 *
 * The commit clock ticks when a committing statement (COMMIT, or a write
 * outside a transaction) is sent and when its answer arrives: its commit
 * window. If a commit was sent after every earlier capture of the table had
 * been answered, nothing it raced can be newer, so its rows are trusted in
 * memory: its event carries `trustedSince`, the tick its commit was sent.
 * Overlapping windows (a pool of connections committing at once: two answers
 * can be handled in either order), events from other nodes (pub/sub can deliver
 * two nodes' events about a row out of commit order), and captures whose commit
 * was sent before a database read that may have seen newer rows (a view's last
 * read; any re-read of an untrusted change of the model, since another node may
 * have written the row since) are re-checked against the database, batched.
 * Either way the last event about a row leaves every subscriber with its latest
 * version. Where the ticks are compared: subscriptions/view.ts (`#decide`) and
 * subscriptions/manager.ts (`#distrustOlderCaptures`).
 *
 * One clock per captured Knex instance (owned by its KnexCapture, so per
 * process node, never module-level): every registration of the plugin on that
 * Knex instance sees the same commits, so they share it.
 */

/** A commit's window on the clock: the tick it was sent at and the tick its answer arrived at. */
export interface CommitWindow {
  sentAt: number
  receivedAt: number
}

/** What a view needs to stamp its reads. */
export interface ReadClock {
  /** The clock now: a read that starts now reflects every commit answered up to it. */
  current (): number
}

export class CommitClock implements ReadClock {
  #now = 0
  /** Per table: the tick the last commit that wrote it was answered at. */
  readonly #lastAnswered = new Map<string, number>()

  tick (): number {
    return ++this.#now
  }

  current (): number {
    return this.#now
  }

  /**
   * Records that a commit wrote `table`, in the order commits were answered;
   * returns the tick it was sent at if its rows can be trusted, else undefined.
   * Call once per table and commit.
   */
  commit (table: string, window: CommitWindow): number | undefined {
    const previous = this.#lastAnswered.get(table) ?? 0
    this.#lastAnswered.set(table, Math.max(previous, window.receivedAt))
    return window.sentAt > previous ? window.sentAt : undefined
  }
}
