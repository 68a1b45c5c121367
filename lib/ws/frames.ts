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

const validators: Record<string, TypeCheck<TSchema>> = {
  subscribe: TypeCompiler.Compile(SubscribeFrame),
  unsubscribe: TypeCompiler.Compile(UnsubscribeFrame),
  request: TypeCompiler.Compile(RequestFrame)
}

const frameTypes = Object.keys(validators).map((type) => `"${type}"`).join(', ')

/** Best-effort id of a frame that failed validation, so the error can still be correlated. */
export function frameIdOf (value: unknown): string | number | null {
  const id = (value as { id?: unknown } | null)?.id
  return typeof id === 'string' || (typeof id === 'number' && Number.isInteger(id)) ? id : null
}

/** Parses and validates one client frame; throws BadFrameError naming what was wrong. */
export function parseFrame (text: string): ClientFrame {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new BadFrameError('frame is not valid JSON; expected an object like {"type":"subscribe","id":1,...}')
  }
  return validateFrame(value)
}

export function validateFrame (value: unknown): ClientFrame {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new BadFrameError(`frame must be a JSON object with a "type" (one of ${frameTypes})`)
  }
  const type = (value as { type?: unknown }).type
  const validator = typeof type === 'string' ? validators[type] : undefined
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
    throw new BadFrameError(`invalid "${field}" in ${String(type)} frame: ${describeExpected(error.schema) ?? error.message.toLowerCase()}`)
  }
  const frame = value as ClientFrame
  if (frame.type === 'subscribe') checkSubscribeTarget(frame)
  return frame
}

/** A union's alternatives in words ("expected one of …"), where TypeBox would only say "Expected union value". */
function describeExpected (schema: TSchema): string | undefined {
  const options = (schema as { anyOf?: TSchema[] }).anyOf
  if (options === undefined) return undefined
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
