/**
 * Keeps every local subscription's view current: turns change events into
 * per-view re-checks (through each model's serial queue) and re-checks into
 * CREATED / UPDATED / DELETED broadcasts, following the tutorial's "What gets broadcast, and why".
 */
import type { FastifyBaseLogger } from 'fastify'
import type { Bus, LocalChangeEvent } from '../bus/bus.js'
import type { CommitClock } from '../capture/commit-clock.js'
import { InstanceNotFoundError, UnkeyedRowsError } from '../errors.js'
import { ViewIndex } from '../matcher/view-index.js'
import type { RealtimeRoute, RouteRegistry } from '../registry/route-registry.js'
import type { UnkeyedRows } from '../registry/unkeyed-rows.js'
import type { Counters } from '../stats.js'
import { ModelQueue, type ChangedKeys } from './model-queue.js'
import { Broadcast, ViewText } from './outbound.js'
import type { Grant } from './revocation.js'
import { KnownState, Subscription, type Subscriber } from './subscription.js'
import { keyOf, type SerializedRows, type ViewReading, type ViewSource } from './view.js'

export interface SubscribeRequest {
  id: string | number
  subscriber: Subscriber
  /** The view to follow; replaced by an identical one already followed, if any. */
  view: ViewSource
  snapshot: boolean
  /** For a retrieve view: the lookup value, to name it in a 404. */
  lookupValue?: string
  /** How it was authorised, so its checks can be re-run (revocation.ts). */
  grant?: Grant
}

/** Told when subscriptions start and end (the revocation tracker). */
export interface SubscriptionWatcher {
  started (subscription: Subscription): void
  ended (subscription: Subscription): void
}

export class SubscriptionManager {
  readonly #views = new Map<string, Map<string, ViewSource>>()
  readonly #queues = new Map<string, ModelQueue>()
  /** Per model: when a change was last re-read because its rows could not be trusted. */
  readonly #untrustedAt = new Map<string, number>()
  /** Models whose resync is queued and not started yet: a gap meanwhile is covered by it. */
  readonly #resyncQueued = new Set<string>()
  /** Per model: finds the views a changed row can affect (equality filters), so a change skips the rest. */
  readonly #indexes = new Map<string, ViewIndex>()
  readonly #registry: RouteRegistry
  readonly #log: FastifyBaseLogger
  readonly #counters: Counters
  /** The capture's commit clock: views stamp their reads with it (capture/commit-clock.ts). */
  readonly #clock: CommitClock
  readonly #unkeyed: UnkeyedRows
  #bus: Bus | undefined
  #watcher: SubscriptionWatcher | undefined

  constructor (registry: RouteRegistry, log: FastifyBaseLogger, counters: Counters, clock: CommitClock, unkeyed: UnkeyedRows) {
    this.#registry = registry
    this.#log = log
    this.#counters = counters
    this.#clock = clock
    this.#unkeyed = unkeyed
  }

  /** The clock views stamp their reads with. */
  get clock (): CommitClock {
    return this.#clock
  }

  attach (bus: Bus): void {
    this.#bus = bus
  }

  watch (watcher: SubscriptionWatcher): void {
    this.#watcher = watcher
  }

  get subscriptionCount (): number {
    let count = 0
    for (const views of this.#views.values()) for (const view of views.values()) count += view.subscriptions.size
    return count
  }

  /** Per route: how many distinct views and subscriptions it has (for the inspector). */
  describe (): Array<{ model: string, route: string, kind: string, views: number, subscriptions: number }> {
    // per route, not per URL: two routes may share a URL
    const byRoute = new Map<RealtimeRoute, { model: string, route: string, kind: string, views: number, subscriptions: number }>()
    for (const views of this.#views.values()) {
      for (const view of views.values()) {
        const { model, url, kind } = view.route
        const entry = byRoute.get(view.route) ?? { model, route: url, kind, views: 0, subscriptions: 0 }
        entry.views++
        entry.subscriptions += view.subscriptions.size
        byRoute.set(view.route, entry)
      }
    }
    return [...byRoute.values()]
  }

  /** A change committed (here or on another node). */
  onEvent (event: LocalChangeEvent): void {
    this.#counters.eventsReceived++
    // the bus only delivers models this node follows, and a followed model has routes
    const pk = this.#registry.pkOf(event.model) as string
    let keys: ChangedKeys = null
    if (event.rows !== null) {
      keys = new Map()
      const deleted = event.op === 'delete'
      const trustedSince = event.trustedSince
      for (const row of event.rows) keys.set(keyOf(row[pk]), { pk: row[pk], row, deleted, trustedSince })
    }
    this.#queue(event.model).changes(keys)
  }

  /** Events may have been missed: every view of these models is re-read and its subscribers resynced. */
  onGap (models: string[]): void {
    this.#counters.gapsDetected++
    for (const model of models) {
      // a flood of gaps (bad messages on the bus) costs one re-read per model, not one per gap
      if (this.#resyncQueued.has(model)) continue
      this.#resyncQueued.add(model)
      void this.#queue(model).job(async () => {
        this.#resyncQueued.delete(model)
        await this.#resyncModel(model)
      }).catch((err: unknown) => this.#failed(model, err))
    }
  }

  async subscribe (request: SubscribeRequest): Promise<Subscription> {
    const model = request.view.route.model
    await this.#requireBus().follow(model)
    try {
      return await this.#queue(model).job(() => this.#start(request))
    } catch (err) {
      this.#requireBus().unfollow(model)
      throw err
    }
  }

  /** Ends a subscription: once this returns, nothing more is sent for it. */
  unsubscribe (subscription: Subscription): void {
    if (subscription.closed) return
    subscription.closed = true
    this.#detach(subscription)
    this.#requireBus().unfollow(subscription.view.route.model)
    this.#watcher?.ended(subscription)
  }

  /** Re-reads one subscription's view and sends it whole (after it fell behind). */
  resync (subscription: Subscription): void {
    const model = subscription.view.route.model
    void this.#queue(model).job(async () => {
      const rows = await subscription.view.readAll()
      this.#leftOutRows(subscription.view)
      // it ended, or is moving to another view (which resyncs it), while its view was read
      if (!subscription.view.subscriptions.has(subscription)) return
      this.#join(subscription, rows)
      this.#sendResync(subscription, new ViewText(rows, subscription.view.single))
    }).catch((err: unknown) => this.#failed(model, err))
  }

  /**
   * Makes a subscription follow another view of its route (its checks now give
   * another one): from the moment this is called it hears nothing more of the
   * old view; once the new one is read (in the model's queue, so no check
   * overtakes it) it is sent a `resync` of it. Rejects when the view cannot be
   * read; the subscription then follows nothing until it is ended.
   */
  async move (subscription: Subscription, view: ViewSource): Promise<void> {
    this.#detach(subscription)
    await this.#queue(view.route.model).job(async () => {
      const { view: followed, rows } = await this.#read(view)
      if (subscription.closed) return
      this.#enter(subscription, followed, rows)
      this.#sendResync(subscription, new ViewText(rows, followed.single))
    })
  }

  /** Resolves when every queued check has run (tests and graceful shutdown). */
  async idle (): Promise<void> {
    await Promise.all([...this.#queues.values()].map(async (queue) => { await queue.idle() }))
  }

  async #start (request: SubscribeRequest): Promise<Subscription> {
    const { view, rows } = await this.#read(request.view)
    if (view.single && rows.size === 0) {
      throw new InstanceNotFoundError(view.route.model, view.route.lookup, String(request.lookupValue))
    }
    const subscription = new Subscription(request.id, request.subscriber, view, request.grant)
    this.#enter(subscription, view, rows)
    request.subscriber.subscribed(subscription, request.snapshot ? new ViewText(rows, view.single) : undefined)
    this.#watcher?.started(subscription)
    return subscription
  }

  /** Reads a view whole, to follow it: the identical one already followed, if any, else this one. */
  async #read (candidate: ViewSource): Promise<{ view: ViewSource, rows: SerializedRows }> {
    // before sharing: a lookup_field view is keyed by the row it finds (view.ts); none found, no rows
    if (!await candidate.resolve()) return { view: candidate, rows: new Map() }
    const view = this.#views.get(candidate.route.model)?.get(candidate.key) ?? candidate
    const rows = await view.readAll()
    if (this.#leftOutRows(view)) {
      // rows a subscriber could not tell apart: no honest live view of them (registry/unkeyed-rows.ts)
      throw new UnkeyedRowsError(view.route.model, view.route.pk)
    }
    return { view, rows }
  }

  /** Makes a subscription follow a view just read (`rows`), which becomes followed if it was not. */
  #enter (subscription: Subscription, view: ViewSource, rows: SerializedRows): void {
    const model = view.route.model
    const views = this.#views.get(model) ?? new Map<string, ViewSource>()
    // indexed after the read: a view's index key is known once its queryset compiled
    if (!views.has(view.key)) this.#index(model).add(view)
    views.set(view.key, view)
    this.#views.set(model, views)
    subscription.view = view
    view.subscriptions.add(subscription)
    this.#join(subscription, rows)
  }

  /** Takes a subscription out of its view and known state; a view left without subscribers is forgotten. */
  #detach (subscription: Subscription): void {
    subscription.state?.subscriptions.delete(subscription)
    subscription.state = undefined
    const view = subscription.view
    // not in its view: it is moving to another one
    if (!view.subscriptions.delete(subscription) || view.subscriptions.size > 0) return
    const views = this.#views.get(view.route.model)
    views?.delete(view.key)
    this.#indexes.get(view.route.model)?.remove(view)
    if (views?.size === 0) {
      this.#views.delete(view.route.model)
      this.#indexes.delete(view.route.model)
    }
  }

  /** Puts a new or stale subscription (one with no state) in the known state of its view equal to `rows`, making one if none is. */
  #join (subscription: Subscription, rows: SerializedRows): void {
    subscription.state?.subscriptions.delete(subscription)
    let state: KnownState | undefined
    for (const other of subscription.view.subscriptions) {
      if (other.state !== undefined && sameRows(other.state.rows, rows)) { state = other.state; break }
    }
    state ??= new KnownState(rows)
    state.subscriptions.add(subscription)
    subscription.state = state
    this.#indexes.get(subscription.view.route.model)?.hold(subscription.view, rows.keys())
  }

  async #check (model: string, keys: ChangedKeys): Promise<void> {
    const views = this.#views.get(model)
    /* c8 ignore next: the last subscriber left while changes waited in the queue */
    if (!views) return
    this.#distrustOlderCaptures(model, keys)
    const index = this.#index(model)
    const visits = keys === null ? new Map([...views.values()].map((view) => [view, null])) : index.route(keys)
    for (const [view, changes] of visits) {
      const reading = await view.read(changes)
      if (reading === undefined) continue
      this.#leftOutRows(view)
      this.#apply(view, reading)
      index.settle(view, reading)
    }
  }

  /** Diffs one reading against each known state of the view and sends the differences. */
  #apply (view: ViewSource, reading: ViewReading): void {
    const { model, pk } = view.route
    const states = new Set<KnownState>()
    for (const subscription of view.subscriptions) if (subscription.state) states.add(subscription.state)
    for (const state of states) {
      const changes: Broadcast[] = []
      const told = state.rows
      const examined = reading.examined ?? new Set([...told.keys(), ...reading.rows.keys()])
      let changed = false
      for (const key of examined) {
        const now = reading.rows.get(key)
        const before = told.get(key)
        let change: Broadcast
        if (now === undefined) {
          if (before === undefined) continue
          change = Broadcast.deleted(model, key, before, pk)
        } else if (before !== now) {
          change = new Broadcast(model, before === undefined ? 'CREATED' : 'UPDATED', key, now, pk)
        } else {
          continue
        }
        if (!changed) {
          // copy on write: the rows may be shared with a reading or another state
          state.rows = new Map(told)
          changed = true
        }
        if (now === undefined) state.rows.delete(key)
        else state.rows.set(key, now)
        changes.push(change)
      }
      if (changes.length === 0) continue
      for (const subscription of [...state.subscriptions]) {
        for (const change of changes) {
          if (subscription.subscriber.broadcast(subscription, change)) {
            this.#counters.broadcastsSent++
          } else {
            // congested: stop telling it anything until its connection drains and asks for a resync
            state.subscriptions.delete(subscription)
            subscription.state = undefined
            break
          }
        }
      }
    }
  }

  /**
   * A change whose rows cannot be trusted (from another node, from publish(), or
   * racing another commit) is re-read from the database now. Another node may
   * have written the same row after a local commit that is still waiting to be
   * handled, so a local capture whose commit was sent before this moment is no
   * longer provably the newest version either (capture/commit-clock.ts).
   */
  #distrustOlderCaptures (model: string, keys: ChangedKeys): void {
    if (keys === null || [...keys.values()].some((change) => change.trustedSince === undefined)) {
      this.#untrustedAt.set(model, this.#clock.current())
    }
    const untrustedAt = this.#untrustedAt.get(model) ?? 0
    if (keys === null) return
    for (const change of keys.values()) {
      if (change.trustedSince !== undefined && change.trustedSince <= untrustedAt) change.trustedSince = undefined
    }
  }

  async #resyncModel (model: string): Promise<void> {
    /* c8 ignore next: a gap can name a model whose last subscriber has just left */
    for (const view of [...(this.#views.get(model) ?? new Map<string, ViewSource>()).values()]) {
      const rows = await view.readAll()
      this.#leftOutRows(view)
      this.#index(model).hold(view, rows.keys())
      const state = new KnownState(rows)
      // read once, told to every subscriber of the view
      const text = new ViewText(rows, view.single)
      for (const subscription of view.subscriptions) {
        subscription.state?.subscriptions.delete(subscription)
        subscription.state = state
        state.subscriptions.add(subscription)
        this.#sendResync(subscription, text)
      }
    }
  }

  /** Whether the view's last read left out rows without a primary key; reports the model once. */
  #leftOutRows (view: ViewSource): boolean {
    if (view.unkeyedRows === 0) return false
    this.#unkeyed.report(view.route.model, 'read')
    return true
  }

  #sendResync (subscription: Subscription, view: ViewText): void {
    this.#counters.resyncsSent++
    subscription.subscriber.resync(subscription, view)
  }

  #index (model: string): ViewIndex {
    let index = this.#indexes.get(model)
    if (index === undefined) {
      index = new ViewIndex()
      this.#indexes.set(model, index)
    }
    return index
  }

  #queue (model: string): ModelQueue {
    let queue = this.#queues.get(model)
    if (!queue) {
      queue = new ModelQueue({
        check: (keys) => this.#check(model, keys),
        failed: (err) => {
          this.#failed(model, err)
          // a failed check leaves views unverified: tell their subscribers rather than go stale silently
          this.onGap([model])
        }
      })
      this.#queues.set(model, queue)
    }
    return queue
  }

  #failed (model: string, err: unknown): void {
    this.#log.error({ err, model }, 'fastify-rest-live: re-checking subscriptions failed')
  }

  #requireBus (): Bus {
    /* c8 ignore next */
    if (!this.#bus) throw new Error('fastify-rest-live: subscription manager used before its bus was attached')
    return this.#bus
  }
}

function sameRows (a: SerializedRows, b: SerializedRows): boolean {
  if (a.size !== b.size) return false
  const left = a.entries()
  for (const [key, value] of b) {
    const next = left.next().value
    if (next === undefined || next[0] !== key || next[1] !== value) return false
  }
  return true
}
