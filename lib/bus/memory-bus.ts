/**
 * The in-process bus: one node, no network, nothing to lose.
 */
import type { Bus, BusListener, LocalChangeEvent } from './bus.js'

export class MemoryBus implements Bus {
  readonly #listener: BusListener
  readonly #interest = new Map<string, number>()

  constructor (listener: BusListener) {
    this.#listener = listener
  }

  async publish (event: LocalChangeEvent): Promise<void> {
    if (this.#interest.has(event.model)) this.#listener.event(event)
  }

  async follow (model: string): Promise<void> {
    this.#interest.set(model, (this.#interest.get(model) ?? 0) + 1)
  }

  unfollow (model: string): void {
    const count = (this.#interest.get(model) as number) - 1 // the manager unfollows only what it followed
    if (count > 0) this.#interest.set(model, count)
    else this.#interest.delete(model)
  }

  async close (): Promise<void> {
    this.#interest.clear()
  }
}
