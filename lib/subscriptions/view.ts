/**
 * A view is what one standing GET returns. Subscriptions whose GETs are
 * provably the same (same SQL and bindings, or same URL and credentials) share
 * one `ViewSource`, so a change costs one check per distinct view, never one
 * per subscriber.
 */
import type { Knex } from 'knex'
import { pkColumn, type RealtimeRoute } from '../registry/route-registry.js'
import type { Row } from '../types.js'
import type { ChangedKeys } from './model-queue.js'
import type { Subscription } from './subscription.js'

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
  constructor (readonly key: string, readonly route: RealtimeRoute) {}

  /** The whole view, now. */
  abstract readAll (): Promise<SerializedRows>
  /** The part of the view a set of changed keys can affect, or undefined when they cannot affect it. */
  abstract readChanged (keys: Map<string, unknown>): Promise<ViewReading | undefined>

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

/** A view defined by the route's queryset: re-checked with `where pk in (…)`. */
export class QuerysetView extends ViewSource {
  readonly #builder: Knex.QueryBuilder
  readonly #lookupKey: string | undefined
  readonly #countQuery: () => void

  constructor (key: string, route: RealtimeRoute, builder: Knex.QueryBuilder, lookupKey: string | undefined, countQuery: () => void) {
    super(key, route)
    this.#builder = builder
    this.#lookupKey = lookupKey
    this.#countQuery = countQuery
  }

  async readAll (): Promise<SerializedRows> {
    this.#countQuery()
    return this.#serialize(await this.#builder.clone() as Row[])
  }

  async readChanged (keys: Map<string, unknown>): Promise<ViewReading | undefined> {
    if (this.#lookupKey !== undefined) {
      if (!keys.has(this.#lookupKey)) return undefined
      return { rows: await this.readAll(), examined: [this.#lookupKey] }
    }
    const values = [...keys.values()]
    const rows: Row[] = []
    for (let start = 0; start < values.length; start += CHUNK) {
      this.#countQuery()
      const chunk = await this.#builder.clone().whereIn(pkColumn(this.route), values.slice(start, start + CHUNK) as readonly Knex.Value[]) as Row[]
      rows.push(...chunk)
    }
    return { rows: this.#serialize(rows), examined: keys.keys() }
  }

  #serialize (rows: Row[]): SerializedRows {
    const serialize = this.route.serialize ?? JSON.stringify
    const pk = this.route.pk
    const out: SerializedRows = new Map()
    for (const row of rows) out.set(keyOf(row[pk]), serialize(row))
    return out
  }
}

export interface RouteFetcher {
  /** Runs the route as REST would for these credentials; undefined body when it answered an error. */
  (url: string, headers: Record<string, string>): Promise<{ statusCode: number, body: unknown }>
}

/** A view with no queryset: the route is re-run and its answer diffed by primary key. */
export class RefetchView extends ViewSource {
  constructor (key: string, route: RealtimeRoute, readonly url: string, readonly headers: Record<string, string>, readonly fetch: RouteFetcher) {
    super(key, route)
  }

  async readAll (): Promise<SerializedRows> {
    const { statusCode, body } = await this.fetch(this.url, this.headers)
    return RefetchView.toRows(this.route, statusCode, body)
  }

  async readChanged (): Promise<ViewReading> {
    // without a queryset there is no cheaper question to ask than the whole route
    return { rows: await this.readAll(), examined: null }
  }

  static toRows (route: RealtimeRoute, statusCode: number, body: unknown): SerializedRows {
    const rows: SerializedRows = new Map()
    if (statusCode !== 200) return rows
    const items = Array.isArray(body) ? body : body !== null && typeof body === 'object' ? [body] : []
    for (const item of items as Row[]) rows.set(keyOf(item[route.pk]), JSON.stringify(item))
    return rows
  }
}
