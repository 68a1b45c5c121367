/**
 * What travels on a Redis channel, and how receivers notice what they missed.
 *
 * Every message is an envelope `{ o, s, d?, e? }`: the origin node's id, that
 * node's serial *for this channel* (a counter of its messages there: one channel
 * per model), an optional "I dropped publishes on this channel" flag, and the
 * change event itself (model, op and rows only: see `wireEvent`). Serials are
 * per (origin, channel) because a node only hears the models it follows: one
 * counter per origin would make every unfollowed model look like a hole.
 * (Serials count messages; the commit clock's ticks, capture/commit-clock.ts,
 * order one node's commits and never leave it.)
 *
 * A receiver remembers the last serial it saw per (channel, origin). The first
 * message of an origin it does not know sets the baseline (a node that joins
 * later starts cleanly); a serial that skips ahead is a gap; a serial at or
 * below the last one is a resent duplicate and is ignored.
 *
 * Anyone who can PUBLISH on the channel can send anything, so a message is
 * validated before any of it is used: a malformed one must cost a resync, never
 * an exception in the subscriber connection's handler.
 */
import { Type } from '@sinclair/typebox'
import { TypeCompiler, type ValueError } from '@sinclair/typebox/compiler'
import { parseJson } from '../json.js'
import type { ChangeEvent, LocalChangeEvent } from './bus.js'

export interface Envelope {
  /** Origin node id. */
  o: string
  /** The origin's serial on this channel. */
  s: number
  /** Set when the origin failed to publish earlier messages on this channel. */
  d?: 1
  /** The change; absent on a bare drop notice. */
  e?: ChangeEvent
}

// What makes a message one of ours: who sent it and its serial among that sender's messages.
const Header = Type.Object({
  o: Type.String({ minLength: 1, maxLength: 256 }),
  s: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })
})

// Anyone who can PUBLISH on the channel can send anything: every field the receiver uses is checked.
const EnvelopeSchema = Type.Object({
  o: Type.String(),
  s: Type.Integer(),
  d: Type.Optional(Type.Literal(1)),
  e: Type.Optional(Type.Object({
    model: Type.String({ minLength: 1 }),
    op: Type.Union([Type.Literal('insert'), Type.Literal('update'), Type.Literal('delete')]),
    rows: Type.Union([Type.Null(), Type.Array(Type.Object({}))])
  }))
})

const checkHeader = TypeCompiler.Compile(Header)
const checkEnvelope = TypeCompiler.Compile(EnvelopeSchema)

/**
 * A message off a channel:
 * - `foreign`: not a fastify-rest-live envelope at all (another application on this prefix);
 * - `invalid`: an envelope (origin and serial readable) whose content is not valid;
 * - `envelope`: a valid one.
 */
export type Message =
  | { kind: 'foreign' }
  | { kind: 'invalid', o: string, s: number, reason: string }
  | { kind: 'envelope', envelope: Envelope }

export function decodeMessage (raw: string): Message {
  // without prototype-poisoning keys, so nothing downstream can be tricked by a __proto__ in a row
  const parsed = parseJson(raw, { poisoned: 'strip' })
  if (!parsed.ok) return { kind: 'foreign' }
  const value = parsed.value
  if (!checkHeader.Check(value)) return { kind: 'foreign' }
  if (!checkEnvelope.Check(value)) {
    const error = checkEnvelope.Errors(value).First() as ValueError // Check failed, so there is one
    return { kind: 'invalid', o: value.o, s: value.s, reason: `${error.path}: ${error.message.toLowerCase()}` }
  }
  const envelope = value as Envelope
  // only what the schema checked is used: a sender's `trustedSince` (or anything else) is dropped
  if (envelope.e !== undefined) envelope.e = wireEvent(envelope.e)
  return { kind: 'envelope', envelope }
}

/** What of a change travels between nodes: never this node's `trustedSince` (bus.ts). */
function wireEvent (event: LocalChangeEvent): ChangeEvent {
  return { model: event.model, op: event.op, rows: event.rows }
}

/** Parses a message off a channel; undefined when it is not a valid envelope. */
export function decodeEnvelope (raw: string): Envelope | undefined {
  const message = decodeMessage(raw)
  return message.kind === 'envelope' ? message.envelope : undefined
}

/** The sending side: one serial counter per channel, and the channels with dropped publishes still to own up to. */
export class OutboundSerials {
  readonly #next = new Map<string, number>()
  readonly #dropped = new Set<string>()
  droppedCount = 0

  /** Wraps an event (or, with none, a bare drop notice) for `channel` and serializes it once. */
  encode (origin: string, channel: string, event?: LocalChangeEvent): string {
    const s = (this.#next.get(channel) ?? 0) + 1
    const envelope: Envelope = { o: origin, s }
    if (this.#dropped.has(channel)) envelope.d = 1
    if (event !== undefined) envelope.e = wireEvent(event)
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

/** Origins remembered per channel by default: forged origin ids cannot make the table grow without bound. */
const MAX_ORIGINS = 1024

/** The receiving side: the last serial seen per (channel, origin). */
export class InboundSerials {
  readonly #last = new Map<string, Map<string, number>>()
  readonly #maxOrigins: number

  constructor (maxOrigins = MAX_ORIGINS) {
    this.#maxOrigins = maxOrigins
  }

  check (channel: string, origin: string, s: number): Verdict {
    let origins = this.#last.get(channel)
    if (origins === undefined) {
      origins = new Map()
      this.#last.set(channel, origins)
    }
    const last = origins.get(origin)
    if (last !== undefined && s <= last) return 'duplicate'
    // re-inserted, so the map is in order of last message and the first entry is the one heard least recently
    origins.delete(origin)
    origins.set(origin, s)
    if (origins.size > this.#maxOrigins) origins.delete(origins.keys().next().value as string)
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
