/**
 * A view is what one standing GET returns. Subscriptions whose GETs are
 * provably the same share one `ViewSource`, so a change costs one check per
 * distinct view, never one per subscriber. "The same" means the same route
 * (which fixes the serializer, lookup, pk and list or retrieve: what shapes a
 * frame) and the same rows: the same SQL and bindings for a queryset, the same
 * URL and request identity (every header, the remote address) for a refetch.
 * The view key is the only thing sharing is decided by: see the two functions below.
 */
import type { Knex } from 'knex'
import { compileQueryset, type IndexKey, type Matcher } from '../matcher/evaluator.js'
import type { TableSchemas } from '../matcher/schema.js'
import type { ReadClock } from '../capture/commit-clock.js'
import { pkColumn, type RealtimeRoute } from '../registry/route-registry.js'
import { usableKey } from '../registry/unkeyed-rows.js'
import type { Row } from '../types.js'
import type { AuthorizedView, LookupFilter, Requester } from './authorizer.js'
import { jsonValue } from '../json.js'
import { arrayItemTexts } from './json-text.js'
import type { ChangedKeys, ChangedRow } from './model-queue.js'
import type { Subscription } from './subscription.js'

/** The key of a queryset view: its route, its lookup value (a retrieve) and its SQL. */
export function querysetViewKey (route: RealtimeRoute, sql: string, bindings: readonly unknown[], lookupValue: string | undefined): string {
  return JSON.stringify(['queryset', route.id, lookupValue ?? null, sql, bindings])
}

/**
 * The key of a refetch view: its route, URL and the whole identity of the
 * injected request (every header, in a stable order, and the remote address
 * when there is one), so a view is shared only by requests REST cannot tell apart.
 */
export function refetchViewKey (route: RealtimeRoute, url: string, requester: Requester): string {
  const headers = Object.entries(requester.headers).sort(([a], [b]) => a < b ? -1 : 1)
  return JSON.stringify(['refetch', route.id, url, headers, requester.remoteAddress ?? null])
}

/** What every queryset view of one registration reads with (made once, in index.ts). */
export interface ViewReads {
  /** Counts one database query made to check a view (`databaseChecks` in the stats). */
  countQuery: () => void
  /** The commit clock views stamp their reads with (capture/commit-clock.ts). */
  clock: ReadClock
  /** The registration's table schemas, for compiling querysets (matcher/schema.ts). */
  schemas: TableSchemas
}

/** The view an authorised subscription follows (replaced by an identical one already followed, if any). */
export function viewOf (authorized: AuthorizedView, reads: ViewReads, fetch: RouteFetcher): ViewSource {
  return authorized.kind === 'queryset'
    ? new QuerysetView(authorized.key, authorized.route, authorized.builder, authorized.serialize, authorized.lookupValue, reads, authorized.lookup)
    : new RefetchView(authorized.key, authorized.route, authorized.url, authorized.requester, fetch)
}

/** Rows of a view as the subscriber would see them: primary key → serialized row, in REST order. */
export type SerializedRows = Map<string, string>

export interface ViewReading {
  rows: SerializedRows
  /** The keys the reading speaks for; null when it is the whole view. */
  examined: Iterable<string> | null
}

export function keyOf (value: unknown): string {
  return String(value)
}

export abstract class ViewSource {
  readonly subscriptions = new Set<Subscription>()
  /** Rows the last read left out because their primary key was NULL (registry/unkeyed-rows.ts). */
  unkeyedRows = 0
  #key: string
  constructor (key: string, readonly route: RealtimeRoute) {
    this.#key = key
  }

  /** What the view is shared by; a lookup_field view re-keys itself by the row's pk when it resolves (QuerysetView). */
  get key (): string {
    return this.#key
  }

  protected rekey (key: string): void {
    this.#key = key
  }

  /**
   * Fixes what the view follows, inside the model's queue, before it is shared:
   * false when there is nothing to follow (no row has the lookup value).
   */
  async resolve (): Promise<boolean> {
    return true
  }

  /** The whole view, now. */
  abstract readAll (): Promise<SerializedRows>
  /** The part of the view a set of changed keys can affect, or undefined when they cannot affect it. */
  abstract readChanged (keys: Map<string, ChangedRow>): Promise<ViewReading | undefined>

  /** An equality every row of the view satisfies, to find the view by a changed row's value (see ViewIndex). */
  get indexKey (): IndexKey | undefined {
    return undefined
  }

  /** Whether the view is a single instance (a retrieve route). */
  get single (): boolean {
    return this.route.kind === 'retrieve'
  }

  async read (keys: ChangedKeys): Promise<ViewReading | undefined> {
    if (keys === null) return { rows: await this.readAll(), examined: null }
    return await this.readChanged(keys)
  }
}

const CHUNK = 500

/**
 * A view defined by the route's queryset. A changed row is matched in memory
 * when the queryset compiles to a predicate (simple where clauses) and the
 * event carried the whole row; otherwise the changed keys are re-checked with
 * one `where pk in (…)` per view.
 */
export class QuerysetView extends ViewSource {
  #builder: Knex.QueryBuilder
  /** The route's row serializer (the view key's route fixes it). */
  readonly #serializer: (row: Row) => string
  /** For a retrieve: the primary key (as a key) of the one row it follows. */
  #lookupKey: string | undefined
  /** For a lookup_field retrieve not resolved yet: how to find its row. */
  #lookup: LookupFilter | undefined
  readonly #reads: ViewReads
  /** null until compiled (on the first read), then the predicate or undefined. */
  #matcher: Matcher | undefined | null = null
  /** The commit-clock tick when this view last read the database (see capture/commit-clock.ts). */
  #readAt = 0

  constructor (key: string, route: RealtimeRoute, builder: Knex.QueryBuilder, serialize: (row: Row) => string, lookupKey: string | undefined, reads: ViewReads, lookup?: LookupFilter) {
    super(key, route)
    this.#builder = builder
    this.#lookup = lookup
    this.#serializer = serialize
    this.#lookupKey = lookupKey
    this.#reads = reads
  }

  /**
   * A lookup_field retrieve finds its row by the lookup column once, then
   * follows it by primary key (a rename of the lookup column is an UPDATED).
   * Its key becomes the pk's, so a subscriber who asks for the old value after
   * a rename finds no row (404, as REST) instead of joining the renamed one.
   */
  override async resolve (): Promise<boolean> {
    const lookup = this.#lookup
    if (lookup === undefined) return true
    this.#reads.countQuery()
    const row = await this.#builder.clone().where(lookup.column, lookup.value).first() as Row | undefined
    const pk = row?.[this.route.pk]
    // a row without a usable key cannot be followed: the read below reports it (registry/unkeyed-rows.ts)
    if (row === undefined) return false
    this.#lookup = undefined
    this.#builder = this.#builder.clone().where(pkColumn(this.route), pk as Knex.Value)
    this.#lookupKey = keyOf(pk)
    const { sql, bindings } = this.#builder.toSQL()
    this.rekey(querysetViewKey(this.route, sql, bindings, this.#lookupKey))
    return true
  }

  override get indexKey (): IndexKey | undefined {
    return this.#matcher?.index
  }

  async readAll (): Promise<SerializedRows> {
    if (this.#matcher === null) this.#matcher = await compileQueryset(this.#builder, this.route.model, this.route.pk, this.#reads.schemas)
    this.#reads.countQuery()
    this.#readAt = this.#reads.clock.current()
    return this.#serialize(await this.#builder.clone() as Row[])
  }

  async readChanged (keys: Map<string, ChangedRow>): Promise<ViewReading | undefined> {
    if (this.#lookupKey !== undefined) {
      const change = keys.get(this.#lookupKey)
      if (change === undefined) return undefined
      const inView = this.#decide(change)
      if (inView === undefined) return { rows: await this.readAll(), examined: [this.#lookupKey] }
      return { rows: inView ? new Map([[this.#lookupKey, this.#serializeChange(change)]]) : new Map(), examined: [this.#lookupKey] }
    }
    const decided: SerializedRows = new Map()
    const values: unknown[] = []
    for (const [key, change] of keys) {
      const inView = this.#decide(change)
      if (inView === undefined) values.push(change.pk)
      else if (inView) decided.set(key, this.#serializeChange(change))
    }
    if (values.length === 0) return { rows: decided, examined: [...keys.keys()] }
    const rows: Row[] = []
    this.#readAt = this.#reads.clock.current()
    for (let start = 0; start < values.length; start += CHUNK) {
      this.#reads.countQuery()
      const chunk = await this.#builder.clone().whereIn(pkColumn(this.route), values.slice(start, start + CHUNK) as readonly Knex.Value[]) as Row[]
      rows.push(...chunk)
    }
    const read = this.#serialize(rows)
    for (const [key, row] of decided) read.set(key, row)
    // an array, not keys.keys(): the reading is diffed once per known state, and an iterator runs out after the first
    return { rows: read, examined: [...keys.keys()] }
  }

  /**
   * Whether a changed row is in the view, decided without the database;
   * undefined when the database must tell. This is the trust rule: a changed
   * row stands in for a database read only when it is provably the newest
   * version of the row this view could see, and the view's predicate can judge
   * it exactly. Every undefined means "ask the database" (batched by the
   * caller), never a guess. Ticks: capture/commit-clock.ts.
   */
  #decide (change: ChangedRow): boolean | undefined {
    // Not trusted: from another node or publish() (pub/sub can deliver two nodes' events out of commit order),
    // or its commit raced another of the table, or a re-read since distrusted it (manager.ts):
    //   t1 node B commits the row, t2 node C commits it, t3 C's event arrives, t4 B's → re-read
    //   t1 our COMMIT A sent, t2 COMMIT B sent, t3 A answered, t4 B answered → B re-read
    if (change.trustedSince === undefined) return undefined
    // Its commit was sent before this view's last read began: that read may have seen a newer version.
    //   t1 our COMMIT sent, t2 another connection commits the row, t3 the view reads it, t4 answered → re-read
    if (change.trustedSince <= this.#readAt) return undefined
    // Gone, and nothing newer can exist: the view no longer holds it (a key that comes back later is news of its own).
    //   t1 view read, t2 DELETE sent, t3 answered → left the view, no query
    if (change.deleted) return false
    // The queryset did not compile to a predicate (a join, raw SQL, a subquery): only the database can judge.
    //   t1 view read, t2 COMMIT sent, t3 answered, but the view filters on another table → re-read
    const matcher = this.#matcher
    if (matcher == null) return undefined
    // The event did not carry the row whole, or not as the driver returns it (a partial RETURNING, a string date).
    //   t1 view read, t2 `update … returning id` sent, t3 answered → re-read
    const row = change.row
    if (row === undefined || !matcher.full(row)) return undefined
    // The newest version, judged exactly by the predicate.
    //   t1 view read, t2 COMMIT sent, t3 answered → trusted: matched in memory
    return matcher.test(row)
  }

  /**
   * The changed row serialized as the route does: once per serializer, whichever
   * views need it. Keyed by the serializer function itself, which alone decides
   * the text (one per route; JSON.stringify for every route without a schema).
   */
  #serializeChange (change: ChangedRow): string {
    const serialize = this.#serializer
    change.serialized ??= new Map()
    let text = change.serialized.get(serialize)
    if (text === undefined) {
      text = serialize(change.row as Row)
      change.serialized.set(serialize, text)
    }
    return text
  }

  #serialize (rows: Row[]): SerializedRows {
    const serialize = this.#serializer
    const pk = this.route.pk
    const out: SerializedRows = new Map()
    this.unkeyedRows = 0
    for (const row of rows) {
      if (usableKey(row[pk])) out.set(keyOf(row[pk]), serialize(row))
      else this.unkeyedRows++
    }
    return out
  }
}

export interface RouteFetcher {
  /** Runs the route as REST would for this requester; the body is the answer's text, as sent. */
  (url: string, requester: Requester): Promise<{ statusCode: number, body: string }>
}

/** A view with no queryset: the route is re-run and its answer diffed by primary key. */
export class RefetchView extends ViewSource {
  /** `requester` is the one the view key was made from: the route is re-run with it. */
  constructor (key: string, route: RealtimeRoute, readonly url: string, readonly requester: Requester, readonly fetch: RouteFetcher) {
    super(key, route)
  }

  async readAll (): Promise<SerializedRows> {
    const { statusCode, body } = await this.fetch(this.url, this.requester)
    this.unkeyedRows = 0
    return RefetchView.toRows(this.route, statusCode, body, () => { this.unkeyedRows++ })
  }

  async readChanged (): Promise<ViewReading> {
    // without a queryset there is no cheaper question to ask than the whole route
    return { rows: await this.readAll(), examined: null }
  }

  /** The rows of a route's answer, each as the route's own text (never re-encoded: see json-text.ts). */
  static toRows (route: RealtimeRoute, statusCode: number, body: string, leftOut: () => void): SerializedRows {
    const rows: SerializedRows = new Map()
    if (statusCode !== 200) return rows
    // poisoning keys stripped, not refused: only the pk is read of it; the rows' texts travel on
    const value = jsonValue(body, { poisoned: 'strip' })
    // an object is one instance; anything else (not JSON, null) no rows
    const items = Array.isArray(value) ? value as Row[] : Object(value) === value ? [value as Row] : []
    const texts = Array.isArray(value) ? arrayItemTexts(body) : [body]
    items.forEach((item, n) => {
      // rows without a primary key are left out, never merged (registry/unkeyed-rows.ts)
      if (usableKey(item[route.pk])) rows.set(keyOf(item[route.pk]), texts[n] as string)
      else leftOut()
    })
    return rows
  }
}
