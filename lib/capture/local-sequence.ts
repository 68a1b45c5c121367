/**
 * Orders this node's captured writes against each other and against its
 * database reads, so a changed row carried by an event can stand in for a
 * database read only when it is provably the newest version.
 *
 * A logical clock ticks when a committing statement (COMMIT, or a write outside
 * a transaction) is sent and when its answer arrives: its commit window. If a
 * commit was sent after every earlier capture of the model had been answered,
 * nothing it raced can be newer, so its rows are trusted in memory. Overlapping
 * windows (a pool of connections committing at once: two answers can be handled
 * in either order), events from other nodes (pub/sub can deliver two nodes'
 * events about a row out of commit order), and captures whose commit was sent
 * before a database read that may have seen newer rows (a view's last read; any
 * re-read of an untrusted change of the model, since another node may have
 * written the row since) are re-checked against the database, batched. Either
 * way the last event about a row leaves every subscriber with its latest version.
 */
import type { ChangeEvent } from '../bus/bus.js'

export interface CommitWindow {
  sentAt: number
  receivedAt: number
}

let clock = 0
const trusted = new WeakMap<ChangeEvent, number>()
const lastAnswered = new Map<string, number>()

export function tick (): number {
  return ++clock
}

/** Records an event this node captured after commit, in the order commits were answered. */
export function markCaptured (event: ChangeEvent, window: CommitWindow): void {
  const previous = lastAnswered.get(event.model) ?? 0
  if (window.sentAt > previous) trusted.set(event, window.sentAt)
  lastAnswered.set(event.model, Math.max(previous, window.receivedAt))
}

/**
 * When a trusted event's commit was sent; undefined for any event whose rows
 * must be re-read. Its rows are newer than anything read from the database
 * before that moment, and older than nothing read after it was answered.
 */
export function capturedSequence (event: ChangeEvent): number | undefined {
  return trusted.get(event)
}

/** The clock now: a read that starts now reflects every commit answered up to it. */
export function currentSequence (): number {
  return clock
}
