/**
 * A subscription, and what its subscriber was last told.
 *
 * Subscribers of one view that were told the same thing share one
 * `KnownState`: a change is diffed once per state, not once per subscriber,
 * and an idle subscription costs a few small objects, not a copy of its view.
 */
import type { Grant } from './revocation.js'
import type { SerializedRows, ViewSource } from './view.js'

/** The connection side of a subscription. */
export interface Subscriber {
  /**
   * Queues a frame; returns false when the socket is congested and broadcasts
   * should pause. Control frames (`subscribed`, `resync`) pass `droppable: false`
   * and are always queued.
   */
  send (frame: string, droppable?: boolean): boolean
}

export class KnownState {
  readonly subscriptions = new Set<Subscription>()
  constructor (public rows: SerializedRows) {}
}

export class Subscription {
  /** The id as JSON, spliced into every frame for this subscription. */
  readonly idJson: string
  /** Shared with every subscription told the same; undefined while stale (awaiting a resync). */
  state: KnownState | undefined = undefined
  closed = false

  /**
   * @param view what it follows; replaced when a re-check finds that its checks now give another view
   * @param grant how it was authorised, to re-run its checks (see revocation.ts); undefined: never re-checked
   */
  constructor (readonly id: string | number, readonly subscriber: Subscriber, public view: ViewSource, readonly grant?: Grant) {
    this.idJson = JSON.stringify(id)
  }

  get stale (): boolean {
    return this.state === undefined
  }
}
