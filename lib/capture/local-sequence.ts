/**
 * Orders this node's own captured writes against its database reads.
 *
 * A changed row carried by an event may only stand in for a database read if
 * nothing newer can have been told to the subscriber already. That holds for
 * writes captured here after the view's last read, when the capture sees
 * commits in order (one connection: see KnexCapture.ordered). It does not hold
 * for events from other nodes (pub/sub can deliver two nodes' events about a
 * row out of commit order), for writes on a pool of connections (two responses
 * can be handled in either order), nor for events committed before a snapshot
 * but handled after it. Those are re-checked against the database, batched.
 */
import type { ChangeEvent } from '../bus/bus.js'

const sequences = new WeakMap<ChangeEvent, number>()
let last = 0

/** Stamps an event this node captured after commit. */
export function markCaptured (event: ChangeEvent): void {
  sequences.set(event, ++last)
}

/** The stamp of an event captured by this node, or undefined for any other event. */
export function capturedSequence (event: ChangeEvent): number | undefined {
  return sequences.get(event)
}

/** The newest stamp so far: a read that starts now reflects every write stamped up to it. */
export function currentSequence (): number {
  return last
}
