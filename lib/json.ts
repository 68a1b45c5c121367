/**
 * The one way the server parses JSON text: client frames, route answers, bus
 * messages. Built on secure-json-parse, so an object with a `__proto__` key or
 * a `constructor` holding a `prototype` (prototype poisoning: harmless in the
 * parsed value itself, dangerous once merged into another object) is refused,
 * as Fastify's own body parser refuses it by default.
 *
 * The browser client (lib/client) and the inspector page parse with JSON.parse:
 * they run in browsers, without this dependency, and parse only what this
 * server sent.
 */
import secureJson from 'secure-json-parse'

export type ParsedJson =
  | { ok: true, value: unknown }
  /** `poisoned`: valid JSON refused for a prototype-poisoning key; otherwise not JSON at all. */
  | { ok: false, poisoned: boolean }

export interface ParseOptions {
  /**
   * `refuse` (the default): a poisoning key fails the parse. `strip`: such keys
   * are deleted and the rest is kept, for a text whose other fields must still
   * be read (a bus message, a route's rows whose text travels on unchanged).
   */
  poisoned?: 'refuse' | 'strip'
}

const REFUSE = { protoAction: 'error', constructorAction: 'error', safe: true } as const
const STRIP = { protoAction: 'remove', constructorAction: 'remove' } as const

export function parseJson (text: string, options: ParseOptions = {}): ParsedJson {
  let value: unknown
  try {
    value = secureJson.parse(text, null, options.poisoned === 'strip' ? STRIP : REFUSE)
  } catch {
    return { ok: false, poisoned: false }
  }
  // `safe` turns a refused key into null; a text that is just `null` parses to null too
  if (value === null && options.poisoned !== 'strip' && JSON.parse(text) !== null) return { ok: false, poisoned: true }
  return { ok: true, value }
}

/** The value of a text, or undefined when it is not JSON or is refused. */
export function jsonValue (text: string, options?: ParseOptions): unknown {
  const parsed = parseJson(text, options)
  return parsed.ok ? parsed.value : undefined
}
