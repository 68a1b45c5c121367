/**
 * What travels on a Redis channel, and how receivers notice what they missed.
 *
 * Every message is an envelope `{ o, s, d?, e? }`: the origin node's id, that
 * node's sequence number *for this channel* (one channel per model), an optional
 * "I dropped publishes on this channel" flag, and the change event itself.
 * Sequence numbers are per (origin, channel) because a node only hears the
 * models it follows: one counter per origin would make every unfollowed model
 * look like a hole.
 *
 * A receiver remembers the last number it saw per (channel, origin). The first
 * message of an origin it does not know sets the baseline (a node that joins
 * later starts cleanly); a number that skips ahead is a gap; a number at or
 * below the last one is a resent duplicate and is ignored.
 */
import type { ChangeEvent } from './bus.js'

export interface Envelope {
  /** Origin node id. */
  o: string
  /** The origin's sequence number on this channel. */
  s: number
  /** Set when the origin failed to publish earlier messages on this channel. */
  d?: 1
  /** The change; absent on a bare drop notice. */
  e?: ChangeEvent
}

/** Parses a message off a channel; undefined when it is not one of ours. */
export function decodeEnvelope (raw: string): Envelope | undefined {
  let value: unknown
  try {
    value = JSON.parse(raw)
  } catch {
    return undefined
  }
  if (value === null || typeof value !== 'object') return undefined
  const envelope = value as Partial<Envelope>
  if (typeof envelope.o !== 'string' || !Number.isSafeInteger(envelope.s)) return undefined
  const event = envelope.e as Partial<ChangeEvent> | undefined
  if (event !== undefined && (event === null || typeof event !== 'object' || typeof event.model !== 'string')) return undefined
  return envelope as Envelope
}

/** The sending side: one counter per channel, and the channels with dropped publishes still to own up to. */
export class OutboundSequences {
  readonly #next = new Map<string, number>()
  readonly #dropped = new Set<string>()
  droppedCount = 0

  /** Wraps an event (or, with none, a bare drop notice) for `channel` and serializes it once. */
  encode (origin: string, channel: string, event?: ChangeEvent): string {
    const s = (this.#next.get(channel) ?? 0) + 1
    const envelope: Envelope = { o: origin, s }
    if (this.#dropped.has(channel)) envelope.d = 1
    if (event !== undefined) envelope.e = event
    // may throw (a BigInt in a row): then nothing is consumed
    const payload = JSON.stringify(envelope)
    this.#next.set(channel, s)
    this.#dropped.delete(channel)
    return payload
  }

  /** A publish on `channel` never reached Redis: the next message there carries the drop flag. */
  dropped (channel: string): void {
    this.#dropped.add(channel)
    this.droppedCount++
  }

  /** Channels whose drop has not been announced yet. */
  pendingDrops (): string[] {
    return [...this.#dropped]
  }
}

export type Verdict = 'first' | 'next' | 'gap' | 'duplicate'

/** The receiving side: the last sequence number seen per (channel, origin). */
export class InboundSequences {
  readonly #last = new Map<string, Map<string, number>>()

  check (channel: string, origin: string, s: number): Verdict {
    let origins = this.#last.get(channel)
    if (origins === undefined) {
      origins = new Map()
      this.#last.set(channel, origins)
    }
    const last = origins.get(origin)
    if (last !== undefined && s <= last) return 'duplicate'
    origins.set(origin, s)
    if (last === undefined) return 'first'
    return s === last + 1 ? 'next' : 'gap'
  }

  /** The node stopped listening to `channel`: what it knew about it no longer holds. */
  forget (channel: string): void {
    this.#last.delete(channel)
  }

  /** The subscriber connection dropped: every baseline is void (the reconnect resyncs). */
  clear (): void {
    this.#last.clear()
  }
}
