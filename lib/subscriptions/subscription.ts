/**
 * A subscription, and what its subscriber was last told.
 *
 * Subscribers of one view that were told the same thing share one
 * `KnownState`: a change is diffed once per state, not once per subscriber,
 * and an idle subscription costs a few small objects, not a copy of its view.
 */
import type { Broadcast, ViewText } from './outbound.js'
import type { Grant } from './revocation.js'
import type { SerializedRows, ViewSource } from './view.js'

/**
 * The connection side of a subscription: told what happened, in structured
 * calls, and shapes it into its own protocol's frames (ws/frames-out.ts for
 * native, channels/events.ts for channels-api). Rows arrive as texts the route
 * serialized once per view and change, shared by every subscriber told the same.
 */
export interface Subscriber {
  /** The subscription started, before any broadcast; `snapshot` is its view when the client asked for it. */
  subscribed (subscription: Subscription, snapshot: ViewText | undefined): void
  /** A change to its view. False when the socket is congested: it is told nothing more until it is resynced. */
  broadcast (subscription: Subscription, change: Broadcast): boolean
  /** Its whole view again: after it fell behind, events were missed, or it moved to another view. */
  resync (subscription: Subscription, view: ViewText): void
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
