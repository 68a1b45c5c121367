/**
 * One serial queue per model. Re-checks and snapshots of a model run one at a
 * time, in arrival order, so each database read sees a state at least as new
 * as the one before: broadcasts about a row reach subscribers in commit order,
 * and a snapshot taken in the queue can never be overtaken by an older check.
 *
 * Change notices waiting together are coalesced into one pass (a burst of
 * writes costs one check per distinct queryset, not one per write).
 */
import type { Row } from '../types.js'

/** One changed row as its event told it. */
export interface ChangedRow {
  /** The primary key's raw value. */
  pk: unknown
  /** The row after the change (the deleted row for a delete), as the event carried it; undefined when unknown. */
  row: Row | undefined
  /** The row no longer exists. */
  deleted: boolean
  /** The tick its commit was sent at, when this node captured it and its row is trusted (capture/commit-clock.ts); else undefined. */
  trustedSince?: number | undefined
  /**
   * Rows earlier changes of this key carried, when they waited in the same
   * batch and the batch cannot tell which is the newest (see `mergeChange`):
   * the views each leads to are visited too.
   */
  alsoSeen?: Array<Row | undefined>
  /** The row serialized by each serializer that needed it: once per route, shared by every view. */
  serialized?: Map<(row: Row) => string, string>
}

/** Changed rows by primary key (the latest change of a key wins), or null for "anything may have changed". */
export type ChangedKeys = Map<string, ChangedRow> | null

type Task =
  | { kind: 'changes', keys: ChangedKeys }
  | { kind: 'job', run: () => Promise<void> }

export interface ModelQueueHandlers {
  check (keys: ChangedKeys): Promise<void>
  failed (err: unknown): void
}

export class ModelQueue {
  readonly #tasks: Task[] = []
  readonly #handlers: ModelQueueHandlers
  #running = false
  #idle: Array<() => void> = []

  constructor (handlers: ModelQueueHandlers) {
    this.#handlers = handlers
  }

  changes (keys: ChangedKeys): void {
    const last = this.#tasks[this.#tasks.length - 1]
    if (last?.kind === 'changes') last.keys = mergeKeys(last.keys, keys)
    else this.#tasks.push({ kind: 'changes', keys: keys === null ? null : new Map(keys) })
    this.#drain()
  }

  /** Runs `run` after everything queued so far; resolves or rejects with it. */
  job<T> (run: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#tasks.push({ kind: 'job', run: () => run().then(resolve, reject) })
      this.#drain()
    })
  }

  /** Resolves when nothing is queued or running. */
  idle (): Promise<void> {
    if (!this.#running && this.#tasks.length === 0) return Promise.resolve()
    return new Promise((resolve) => this.#idle.push(resolve))
  }

  #drain (): void {
    if (this.#running) return
    this.#running = true
    // start on a later tick so writes committed together coalesce
    setImmediate(() => { void this.#loop() })
  }

  async #loop (): Promise<void> {
    for (let task = this.#tasks.shift(); task !== undefined; task = this.#tasks.shift()) {
      try {
        if (task.kind === 'job') await task.run()
        else await this.#handlers.check(task.keys)
      } catch (err) {
        this.#handlers.failed(err)
      }
    }
    this.#running = false
    const idle = this.#idle
    this.#idle = []
    for (const resolve of idle) resolve()
  }
}

function mergeKeys (into: ChangedKeys, from: ChangedKeys): ChangedKeys {
  if (into === null || from === null) return null
  for (const [key, change] of from) {
    const earlier = into.get(key)
    into.set(key, earlier === undefined ? change : mergeChange(earlier, change))
  }
  return into
}

/**
 * One change for a key changed twice while waiting. Coalescing must not change
 * what the check concludes, so the later change wins outright only when both
 * were trusted: the later commit was then sent after the earlier one was
 * answered (commit-clock.ts), so its row is the newer. Otherwise either row
 * may be the newest, so the merged change is not trusted (its row is re-read)
 * and keeps every row seen, to find the views the row may have entered:
 *
 *   t1 we send COMMIT (a rename, owner 1), t2 another node moves the row to
 *   owner 2 and publishes, t3 its event arrives, t4 our COMMIT is answered and
 *   our capture queued behind it, t5 one check → owner 2's view is visited
 *   and re-read (our row alone would lead only to owner 1's, in memory)
 */
function mergeChange (earlier: ChangedRow, later: ChangedRow): ChangedRow {
  if (earlier.trustedSince !== undefined && later.trustedSince !== undefined) return later
  const alsoSeen = earlier.alsoSeen ?? []
  // a deleted row enters no view
  if (!earlier.deleted) alsoSeen.push(earlier.row)
  return { ...later, trustedSince: undefined, alsoSeen }
}
