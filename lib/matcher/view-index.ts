/**
 * Finds the views of one model a change can affect, so a change costs work
 * for the views it concerns, not for every view of the model.
 *
 * A view whose predicate requires `column = value` (or `column in (…)`) is
 * filed under that value. A changed row then visits:
 * - the views filed under its new value (it may have entered them),
 * - the views that may hold it now (it may have left them: an update moving a
 *   task from one owner to another): `holders` remembers, per row key, under
 *   which values the row was last seen in a view,
 * - every view that is not indexed.
 * A row whose value cannot be canonicalised (a partial row, an unexpected
 * type) visits every view of the column.
 */
import type { ChangedRow } from '../subscriptions/model-queue.js'
import type { Row } from '../types.js'
import type { ViewReading, ViewSource } from '../subscriptions/view.js'
import type { IndexKey } from './evaluator.js'

interface ColumnIndex {
  canon: IndexKey['canon']
  /** canonical value → views filed under it */
  buckets: Map<string, Set<ViewSource>>
  /** row key → the canonical value(s) of the views that may hold the row */
  holders: Map<string, string | Set<string>>
}

export type Visits = Map<ViewSource, Map<string, ChangedRow>>

export class ViewIndex {
  readonly #scan = new Set<ViewSource>()
  readonly #columns = new Map<string, ColumnIndex>()
  readonly #filed = new Map<ViewSource, IndexKey>()

  add (view: ViewSource): void {
    const key = view.indexKey
    if (key === undefined) {
      this.#scan.add(view)
      return
    }
    let column = this.#columns.get(key.column)
    if (column === undefined) {
      column = { canon: key.canon, buckets: new Map(), holders: new Map() }
      this.#columns.set(key.column, column)
    }
    for (const value of key.values) {
      let bucket = column.buckets.get(value)
      if (bucket === undefined) {
        bucket = new Set()
        column.buckets.set(value, bucket)
      }
      bucket.add(view)
    }
    this.#filed.set(view, key)
  }

  remove (view: ViewSource): void {
    this.#scan.delete(view)
    const key = this.#filed.get(view)
    if (key === undefined) return
    this.#filed.delete(view)
    const column = this.#columns.get(key.column) as ColumnIndex
    for (const value of key.values) {
      const bucket = column.buckets.get(value) as Set<ViewSource>
      bucket.delete(view)
      if (bucket.size === 0) column.buckets.delete(value)
    }
    // holders pointing at emptied buckets are dropped when their rows next change
  }

  /** The view (now) holds these rows: a later change to one of them must visit it. */
  hold (view: ViewSource, keys: Iterable<string>): void {
    const key = this.#filed.get(view)
    if (key === undefined) return
    const holders = (this.#columns.get(key.column) as ColumnIndex).holders
    for (const row of keys) {
      for (const value of key.values) addHolder(holders, row, value)
    }
  }

  /** After a view read: the rows it examined and now holds. */
  settle (view: ViewSource, reading: ViewReading): void {
    if (!this.#filed.has(view)) return
    const held: string[] = []
    for (const row of reading.examined ?? reading.rows.keys()) if (reading.rows.has(row)) held.push(row)
    this.hold(view, held)
  }

  /** The views to read for these changes, each with the changes that concern it. */
  route (changes: Map<string, ChangedRow>): Visits {
    const visits: Visits = new Map()
    for (const view of this.#scan) visits.set(view, changes)
    for (const [name, column] of this.#columns) {
      for (const [row, change] of changes) {
        const values = column.holders.get(row)
        column.holders.delete(row) // re-learnt from the readings (settle)
        if (values !== undefined) {
          if (typeof values === 'string') visitBucket(visits, column.buckets.get(values), row, change)
          else for (const value of values) visitBucket(visits, column.buckets.get(value), row, change)
        }
        // a deleted row enters no view
        if (!change.deleted) enter(visits, column, name, change.row, row, change)
        // rows of earlier changes in the batch: any may be the newest (model-queue.ts)
        for (const seen of change.alsoSeen ?? []) enter(visits, column, name, seen, row, change)
      }
    }
    return visits
  }
}

/** Visits the views a row (as a change carried it) may have entered: those filed under its value, or all when unknown. */
function enter (visits: Visits, column: ColumnIndex, name: string, values: Row | undefined, row: string, change: ChangedRow): void {
  const value = values === undefined ? undefined : column.canon(values[name])
  if (value !== undefined) {
    visitBucket(visits, column.buckets.get(value), row, change)
  } else {
    for (const bucket of column.buckets.values()) visitBucket(visits, bucket, row, change)
  }
}

function addHolder (holders: Map<string, string | Set<string>>, row: string, value: string): void {
  const current = holders.get(row)
  if (current === undefined) holders.set(row, value)
  else if (typeof current === 'string') {
    if (current !== value) holders.set(row, new Set([current, value]))
  } else current.add(value)
}

function visitBucket (visits: Visits, bucket: Set<ViewSource> | undefined, row: string, change: ChangedRow): void {
  if (bucket === undefined) return
  for (const view of bucket) {
    let changes = visits.get(view)
    if (changes === undefined) {
      changes = new Map()
      visits.set(view, changes)
    }
    changes.set(row, change)
  }
}
