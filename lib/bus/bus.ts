/**
 * The bus carries change events from the node that committed a write to every
 * node that may have subscribers for it. Implementations: in-process (one node)
 * and Redis pub/sub (many nodes).
 */
import type { Row, WriteOp } from '../types.js'

/** A change as it travels between nodes. */
export interface ChangeEvent {
  model: string
  op: WriteOp
  /** The affected rows (at least their primary key), or null when unknown: re-check the whole view. */
  rows: Row[] | null
}

/** A change as a bus hands it to this node's listener. */
export interface LocalChangeEvent extends ChangeEvent {
  /**
   * Set only on a change this node captured whose rows are provably the
   * newest: the commit-clock tick its commit was sent at (capture/commit-clock.ts).
   * Never on the wire: a node's ticks mean nothing to another, and a receiver
   * must not take a sender's word for it (redis-serial.ts drops it both ways).
   */
  trustedSince?: number
}

export interface BusListener {
  /** A change committed somewhere. */
  event (event: LocalChangeEvent): void
  /** Events of these models may have been missed: resync their views. */
  gap (models: string[]): void
}

export interface Bus {
  /** Sends one event to every node following its model (this one as it is, others without `trustedSince`). */
  publish (event: LocalChangeEvent): Promise<void>
  /**
   * Reference-counted interest: a node only hears the models its subscribers
   * follow. Resolves once events of the model are being received.
   */
  follow (model: string): Promise<void>
  unfollow (model: string): void
  close (): Promise<void>
}
