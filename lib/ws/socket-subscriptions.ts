/**
 * The subscriptions of one socket, of both protocols, in one set: they count
 * together towards maxSubscriptions, are resynced together after a drain and
 * released together when the socket closes. Each protocol keys its own
 * (native: the frame id; channels-api: stream, event and pk), under its own prefix.
 */
import { TooManySubscriptionsError } from '../errors.js'
import type { SubscriptionManager } from '../subscriptions/manager.js'
import type { Subscription } from '../subscriptions/subscription.js'

/** A subscription, or its start while the view is read. */
type Entry = Subscription | Promise<Subscription | undefined>

export class SocketSubscriptions {
  readonly #entries = new Map<string, Entry>()
  readonly #manager: Pick<SubscriptionManager, 'unsubscribe' | 'resync'>
  readonly #max: number
  #closed = false

  constructor (manager: Pick<SubscriptionManager, 'unsubscribe' | 'resync'>, maxSubscriptions: number) {
    this.#manager = manager
    this.#max = maxSubscriptions
  }

  get size (): number {
    return this.#entries.size
  }

  get closed (): boolean {
    return this.#closed
  }

  has (key: string): boolean {
    return this.#entries.has(key)
  }

  /**
   * Holds under `key` the subscription `start` makes. Resolves with it once it
   * is held; with undefined when the socket closed or `key` was removed while
   * it started (it is released then). Rejects with start's error, freeing `key`.
   * Throws TooManySubscriptionsError beyond maxSubscriptions.
   */
  async add (key: string, start: () => Promise<Subscription>): Promise<Subscription | undefined> {
    if (this.#entries.size >= this.#max) throw new TooManySubscriptionsError(this.#max)
    const pending = start()
    const held = pending.then((subscription) => subscription, () => undefined)
    this.#entries.set(key, held)
    let subscription: Subscription
    try {
      subscription = await pending
    } catch (err) {
      if (this.#entries.get(key) === held) this.#entries.delete(key)
      throw err
    }
    if (this.#closed || this.#entries.get(key) !== held) {
      // the socket closed, or the client unsubscribed, while the view was read
      this.#manager.unsubscribe(subscription)
      return undefined
    }
    this.#entries.set(key, subscription)
    return subscription
  }

  /**
   * Ends the subscription under `key`; false when there is none. Resolves once
   * it is released: one still starting is waited for (add() releases it), so
   * nothing is sent for it after this resolves.
   */
  async remove (key: string): Promise<boolean> {
    const entry = this.#entries.get(key)
    if (entry === undefined) return false
    this.#entries.delete(key)
    const subscription = await entry
    if (subscription !== undefined) this.#manager.unsubscribe(subscription)
    return true
  }

  /** Forgets `key` without unsubscribing: the manager already released it (a revocation). */
  forget (key: string): void {
    this.#entries.delete(key)
  }

  /** After a drain: resyncs every subscription that stopped hearing changes while the socket was congested. */
  resyncStale (): void {
    for (const entry of this.#entries.values()) {
      if (!(entry instanceof Promise) && entry.stale) this.#manager.resync(entry)
    }
  }

  /** The socket closed: releases everything, and whatever is still starting when it settles. */
  close (): void {
    this.#closed = true
    for (const entry of this.#entries.values()) {
      if (!(entry instanceof Promise)) this.#manager.unsubscribe(entry)
    }
    this.#entries.clear()
  }
}
