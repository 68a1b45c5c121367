/**
 * The bus carries change events from the node that committed a write to every
 * node that may have subscribers for it. Implementations: in-process (one node)
 * and Redis pub/sub (many nodes).
 */
import type { Row, WriteOp } from '../types.js'

export interface ChangeEvent {
  model: string
  op: WriteOp
  /** The affected rows (at least their primary key), or null when unknown: re-check the whole view. */
  rows: Row[] | null
}

export interface BusListener {
  /** A change committed somewhere. */
  event (event: ChangeEvent): void
  /** Events of these models may have been missed: resync their views. */
  gap (models: string[]): void
}

export interface Bus {
  /** Sends one event to every node following its model (this one included). */
  publish (event: ChangeEvent): Promise<void>
  /**
   * Reference-counted interest: a node only hears the models its subscribers
   * follow. Resolves once events of the model are being received.
   */
  follow (model: string): Promise<void>
  unfollow (model: string): void
  close (): Promise<void>
}
