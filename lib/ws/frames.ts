/**
 * Client → server frames: one TypeBox schema and one compiled validator per
 * frame type, so an error names the field instead of "Expected union value".
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import { BadFrameError } from '../errors.js'

const FrameId = Type.Union([Type.String({ minLength: 1, maxLength: 128 }), Type.Integer()])
const Scalar = Type.Union([Type.String(), Type.Number(), Type.Boolean()])

export const SubscribeFrame = Type.Object({
  type: Type.Literal('subscribe'),
  id: FrameId,
  model: Type.Optional(Type.String({ minLength: 1 })),
  action: Type.Optional(Type.Union([Type.Literal('list'), Type.Literal('retrieve')])),
  lookup_by: Type.Optional(Type.Union([Type.String(), Type.Number()])),
  view_kwargs: Type.Optional(Type.Record(Type.String(), Scalar)),
  query_params: Type.Optional(Type.Record(Type.String(), Type.Union([Scalar, Type.Array(Scalar)]))),
  path: Type.Optional(Type.String({ pattern: '^/' })),
  snapshot: Type.Optional(Type.Boolean())
}, { additionalProperties: false })

export const UnsubscribeFrame = Type.Object({
  type: Type.Literal('unsubscribe'),
  id: FrameId
}, { additionalProperties: false })

export const RequestFrame = Type.Object({
  type: Type.Literal('request'),
  id: FrameId,
  method: Type.Union(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'].map((method) => Type.Literal(method))),
  path: Type.String({ pattern: '^/' }),
  body: Type.Optional(Type.Unknown())
}, { additionalProperties: false })

export type SubscribeFrame = Static<typeof SubscribeFrame>
export type UnsubscribeFrame = Static<typeof UnsubscribeFrame>
export type RequestFrame = Static<typeof RequestFrame>
export type ClientFrame = SubscribeFrame | UnsubscribeFrame | RequestFrame

// a Map, not an object: a frame type such as "constructor" or "__proto__" must not find an inherited member
const validators = new Map<string, TypeCheck<TSchema>>([
  ['subscribe', TypeCompiler.Compile(SubscribeFrame)],
  ['unsubscribe', TypeCompiler.Compile(UnsubscribeFrame)],
  ['request', TypeCompiler.Compile(RequestFrame)]
])

const frameTypes = [...validators.keys()].map((type) => `"${type}"`).join(', ')

/**
 * How deeply a client frame may nest arrays and objects. Recursive code (the
 * JSON.stringify that re-encodes a request body, for one) overflows the stack
 * on a value nested a few thousand levels deep, which fits in a small frame.
 */
export const MAX_DEPTH = 64

/** Whether a parsed JSON value nests deeper than `limit` levels; iterative, so it cannot overflow itself. */
export function deeperThan (value: unknown, limit: number): boolean {
  const stack: Array<{ value: unknown, depth: number }> = [{ value, depth: 1 }]
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    if (item.value === null || typeof item.value !== 'object') continue
    if (item.depth > limit) return true
    for (const child of Object.values(item.value)) stack.push({ value: child, depth: item.depth + 1 })
  }
  return false
}

/** Whether a string is well-formed UTF-16: encodeURIComponent throws on a lone surrogate. */
export function wellFormed (text: string): boolean {
  return !/\p{Cs}/u.test(text)
}

/** Best-effort id of a frame that failed validation, so the error can still be correlated. */
export function frameIdOf (value: unknown): string | number | null {
  const id = (value as { id?: unknown } | null)?.id
  return typeof id === 'string' || (typeof id === 'number' && Number.isInteger(id)) ? id : null
}

export function validateFrame (value: unknown): ClientFrame {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new BadFrameError(`frame must be a JSON object with a "type" (one of ${frameTypes})`)
  }
  if (deeperThan(value, MAX_DEPTH)) throw new BadFrameError(`frame is nested deeper than ${MAX_DEPTH} levels`)
  const type = (value as { type?: unknown }).type
  const validator = typeof type === 'string' ? validators.get(type) : undefined
  if (validator === undefined) {
    throw new BadFrameError(`unknown frame type ${JSON.stringify(type) ?? 'undefined'}; expected one of ${frameTypes}`)
  }
  if (!validator.Check(value)) {
    const error = validator.Errors(value).First()
    /* c8 ignore next */
    if (error === undefined) throw new BadFrameError(`invalid ${String(type)} frame`)
    const field = error.path.replace(/^\//, '').replace(/\//g, '.')
    const known = Object.keys((validator.Schema() as unknown as { properties: object }).properties)
    if (!known.includes(String(field.split('.')[0]))) {
      throw new BadFrameError(`unknown field "${field}" in ${String(type)} frame (allowed: ${known.join(', ')})`)
    }
    throw new BadFrameError(`invalid "${field}" in ${String(type)} frame: ${describeExpected(error.schema, error.value) ?? error.message.toLowerCase()}`)
  }
  const frame = value as ClientFrame
  if (frame.type !== 'unsubscribe' && frame.path !== undefined) checkPath(frame.path, frame.type)
  if (frame.type === 'subscribe') checkSubscribeTarget(frame)
  return frame
}

/**
 * A path is run with app.inject, which resolves it with `new URL(path, base)`:
 * that throws on some paths (a backslash after the first slash starts a host
 * name) and reads others as another host (`//host/x`). Only a path on this
 * server is accepted.
 */
function checkPath (path: string, type: string): void {
  let url: URL | undefined
  try { url = new URL(path, 'http://localhost') } catch {}
  if (url?.host !== 'localhost') {
    throw new BadFrameError(`invalid "path" in ${type} frame: expected a path on this server like "/tasks?done=true", got ${JSON.stringify(path.slice(0, 64))}`)
  }
}

/** A union's alternatives, nested unions flattened (`pk: string | integer | null`). */
function alternatives (schema: TSchema): TSchema[] {
  const options = (schema as { anyOf?: TSchema[] }).anyOf
  return options === undefined ? [schema] : options.flatMap(alternatives)
}

/** A union's alternatives in words ("expected one of …"), where TypeBox would only say "Expected union value". */
export function describeExpected (schema: TSchema, value: unknown): string | undefined {
  if ((schema as { anyOf?: TSchema[] }).anyOf === undefined) return undefined
  const options = alternatives(schema)
  // a string of the right type but the wrong length: say which bound it broke, not which types are allowed
  if (typeof value === 'string') {
    const bounds = options.find((option) => option.type === 'string') as { minLength?: number, maxLength?: number } | undefined
    if (bounds?.maxLength !== undefined && value.length > bounds.maxLength) return `too long (at most ${bounds.maxLength} characters, got ${value.length})`
    if (bounds?.minLength !== undefined && value.length < bounds.minLength) return 'must not be empty'
  }
  const names = options.map((option) => 'const' in option ? JSON.stringify(option.const) : String(option.type))
  return `expected one of ${names.join(', ')}`
}

function checkSubscribeTarget (frame: SubscribeFrame): void {
  if (frame.path !== undefined) {
    for (const field of ['model', 'action', 'lookup_by', 'view_kwargs', 'query_params'] as const) {
      if (frame[field] !== undefined) throw new BadFrameError(`subscribe frame has both "path" and "${field}"; give one or the other`)
    }
    return
  }
  if (frame.model === undefined || frame.action === undefined) {
    throw new BadFrameError('subscribe frame needs "model" and "action" ("list" or "retrieve"), or a "path"')
  }
  if (frame.action === 'retrieve' && frame.lookup_by === undefined) {
    throw new BadFrameError('subscribe frame with action "retrieve" needs "lookup_by"')
  }
  if (frame.action === 'list' && frame.lookup_by !== undefined) {
    throw new BadFrameError('subscribe frame with action "list" takes no "lookup_by"')
  }
}
