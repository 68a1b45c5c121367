/**
 * Which channels this node listens to: reference-counted per model, so the
 * node subscribes when its first local subscriber follows a model and
 * unsubscribes when the last one leaves. A node with no subscriber for a
 * model never receives that model's events.
 */

interface Entry {
  model: string
  count: number
  /** Settles when Redis has acknowledged the SUBSCRIBE. */
  subscribed: Promise<unknown>
}

export interface InterestHandlers {
  subscribe (channel: string): Promise<unknown>
  unsubscribe (channel: string): void
}

export class ChannelInterest {
  readonly #entries = new Map<string, Entry>()
  readonly #handlers: InterestHandlers

  constructor (handlers: InterestHandlers) {
    this.#handlers = handlers
  }

  /** Resolves once the channel is really subscribed; on failure the interest is given back. */
  async follow (channel: string, model: string): Promise<void> {
    let entry = this.#entries.get(channel)
    if (entry === undefined) {
      entry = { model, count: 0, subscribed: this.#handlers.subscribe(channel) }
      this.#entries.set(channel, entry)
    }
    entry.count++
    try {
      await entry.subscribed
    } catch (err) {
      this.#release(channel, entry)
      throw err
    }
  }

  unfollow (channel: string): void {
    const entry = this.#entries.get(channel)
    if (entry !== undefined) this.#release(channel, entry)
  }

  /** The model a followed channel carries; undefined once nobody here follows it. */
  modelOf (channel: string): string | undefined {
    return this.#entries.get(channel)?.model
  }

  channels (): string[] {
    return [...this.#entries.keys()]
  }

  models (): string[] {
    return [...this.#entries.values()].map((entry) => entry.model)
  }

  #release (channel: string, entry: Entry): void {
    entry.count--
    if (entry.count > 0) return
    this.#entries.delete(channel)
    this.#handlers.unsubscribe(channel)
  }
}
