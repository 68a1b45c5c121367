/**
 * What subscribers are told, before any protocol shapes it into a frame: rows
 * already serialized by the route (once per view and change, shared by every
 * subscriber told the same), and a memo so each protocol builds its frame, or
 * the part of it every recipient shares, once per change rather than once per
 * subscriber.
 */
import { memberText } from './json-text.js'
import type { SerializedRows } from './view.js'

export type BroadcastAction = 'CREATED' | 'UPDATED' | 'DELETED'

/** Builds a text once per object that carries it, whoever asks first: `name` says which text. */
class Memo {
  readonly #texts = new Map<string, string>()

  text (name: string, build: () => string): string {
    let text = this.#texts.get(name)
    if (text === undefined) {
      text = build()
      this.#texts.set(name, text)
    }
    return text
  }
}

/** One change of one view, as told to the subscribers that were told the same before it. */
export class Broadcast extends Memo {
  #pk: string | undefined

  /**
   * @param key the row's key in its view (the primary key as a string: view.ts keyOf)
   * @param instance the row as the route serializes it; for DELETED, only its primary key
   * @param pkField the route's primary key
   * @param pk the primary key's text in `instance`, when known; else found there on first use
   */
  constructor (readonly model: string, readonly action: BroadcastAction, readonly key: string, readonly instance: string, readonly pkField: string, pk?: string) {
    super()
    this.#pk = pk
  }

  /** A row that left the view: told by its primary key, in the bytes the subscriber last saw. */
  static deleted (model: string, key: string, lastSeen: string, pkField: string): Broadcast {
    // the registry makes sure a route's response schema keeps the primary key
    const pk = memberText(lastSeen, pkField)
    return new Broadcast(model, 'DELETED', key, pk === undefined ? '{}' : `{${JSON.stringify(pkField)}:${pk}}`, pkField, pk ?? 'null')
  }

  /** The primary key's text in `instance` ('null' when the serialization has none); looked up once, when a protocol needs it. */
  get pk (): string {
    this.#pk ??= memberText(this.instance, this.pkField) ?? 'null'
    return this.#pk
  }
}

/** A whole view, as REST would answer it: read once, told to each of its subscribers. */
export class ViewText extends Memo {
  #json: string | undefined

  constructor (readonly rows: SerializedRows, readonly single: boolean) {
    super()
  }

  /** An array for a list, the instance (or null) for a retrieve; built once. */
  get json (): string {
    this.#json ??= this.single ? this.rows.values().next().value ?? 'null' : `[${[...this.rows.values()].join(',')}]`
    return this.#json
  }
}
