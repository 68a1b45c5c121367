/**
 * A channels-api subscription's events, as channels-api's bindings sent them:
 * built from what the manager tells it (subscriptions/outbound.ts), never from
 * a native frame. The rows are the route's own texts, spliced as they are, and
 * a frame is built once per change for every subscriber of the same stream,
 * event and model (channels-api events carry no subscription id).
 */
import type { Broadcast, ViewText } from '../subscriptions/outbound.js'
import type { Subscriber } from '../subscriptions/subscription.js'
import type { FrameSink } from '../ws/frames-out.js'
import { eventFrame } from './frames.js'

/** The events a channels-api client subscribes to, by the broadcast action that carries them. */
export const EVENT_ACTIONS: Record<string, string> = { CREATED: 'create', UPDATED: 'update', DELETED: 'delete' }

export interface EventTarget {
  stream: string
  /** create | update | delete */
  action: string
  /** Only this instance's events (its primary key as a string), or every instance's. */
  pk: string | undefined
  model: string
  /** Called when the manager acknowledges the subscription, before any event. */
  acknowledged: () => void
}

export class EventSubscriber implements Subscriber {
  readonly #sink: FrameSink
  readonly #target: EventTarget
  /** What the frames this subscriber builds depend on besides the change: names them in the change's memo. */
  readonly #shape: string

  constructor (sink: FrameSink, target: EventTarget) {
    this.#sink = sink
    this.#target = target
    this.#shape = JSON.stringify(['channels', target.stream, target.action, target.model, target.pk ?? null])
  }

  subscribed (): void {
    this.#target.acknowledged()
  }

  broadcast (_subscription: unknown, change: Broadcast): boolean {
    const { stream, action, pk, model } = this.#target
    if (EVENT_ACTIONS[change.action] !== action) return true
    // the row's key is its primary key as a string (view.ts keyOf), as `pk` is
    if (pk !== undefined && change.key !== pk) return true
    return this.#sink.send(change.text(this.#shape, () => eventFrame(stream, action, change.pk, change.instance, model)))
  }

  /** channels-api had no such event: the server may have missed changes, so the client should reload. */
  resync (_subscription: unknown, view: ViewText): void {
    const { stream, pk, model } = this.#target
    this.#sink.send(view.text(this.#shape, () => {
      const data = pk !== undefined && !view.single ? `[${view.rows.get(pk) ?? ''}]` : view.json
      return eventFrame(stream, 'resync', JSON.stringify(pk ?? null), data, model)
    }), false)
  }
}
