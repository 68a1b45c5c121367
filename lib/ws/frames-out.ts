/**
 * Native server → client frames, built as strings around texts that are
 * already JSON (rows serialized once by the route), so a row is never
 * re-encoded and the part of a broadcast every recipient shares is built once.
 */
import type { FrameFailure } from '../errors.js'
import type { Broadcast, ViewText } from '../subscriptions/outbound.js'
import type { Subscriber, Subscription } from '../subscriptions/subscription.js'

/** Where a protocol's frames go: the socket's writer (writer.ts). */
export interface FrameSink {
  /** False when the socket is congested; `droppable: false` frames are always queued. */
  send (frame: string, droppable?: boolean): boolean
}

export function subscribedFrame (idJson: string, data: string | undefined): string {
  return data === undefined ? `{"type":"subscribed","id":${idJson}}` : `{"type":"subscribed","id":${idJson},"data":${data}}`
}

/** The part of a broadcast after the subscription id: the same for every recipient of one change. */
export function broadcastTail (change: Broadcast): string {
  return `,"model":${JSON.stringify(change.model)},"action":"${change.action}","instance":${change.instance}}`
}

export function broadcastFrame (idJson: string, tail: string): string {
  return `{"type":"broadcast","id":${idJson}${tail}`
}

export function resyncFrame (idJson: string, data: string): string {
  return `{"type":"resync","id":${idJson},"data":${data}}`
}

export function unsubscribedFrame (id: string | number): string {
  return JSON.stringify({ type: 'unsubscribed', id })
}

export function errorFrame (id: string | number | null, failure: FrameFailure): string {
  return JSON.stringify({ type: 'error', id, code: failure.statusCode, message: failure.message })
}

/** A request frame's answer; `body` is JSON text, spliced as it is. */
export function responseFrame (id: string | number, status: number, body: string): string {
  return `{"type":"response","id":${JSON.stringify(id)},"status":${status},"body":${body}}`
}

/** Tells native subscriptions their news as native frames; one serves every native subscription of a socket. */
export class NativeSubscriber implements Subscriber {
  readonly #sink: FrameSink

  constructor (sink: FrameSink) {
    this.#sink = sink
  }

  subscribed (subscription: Subscription, snapshot: ViewText | undefined): void {
    this.#sink.send(subscribedFrame(subscription.idJson, snapshot?.json), false)
  }

  broadcast (subscription: Subscription, change: Broadcast): boolean {
    return this.#sink.send(broadcastFrame(subscription.idJson, change.text('native', () => broadcastTail(change))))
  }

  resync (subscription: Subscription, view: ViewText): void {
    this.#sink.send(resyncFrame(subscription.idJson, view.json), false)
  }
}
