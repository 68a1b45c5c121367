/**
 * channels-api frames: `{ stream, payload: { action, pk?, data?, request_id? } }`
 * in, `{ stream, payload: { action, data, errors, response_status, request_id } }`
 * out. A client frame is recognised by its shape (it has `stream` and
 * `payload`), so both protocols share one socket.
 */
import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { BadFrameError } from '../errors.js'
import { deeperThan, describeExpected, MAX_DEPTH, wellFormed } from '../ws/frames.js'

const Pk = Type.Union([Type.String({ minLength: 1, maxLength: 256 }), Type.Integer()])
const RequestId = Type.Union([Type.String({ maxLength: 256 }), Type.Number(), Type.Null()])

/** Unknown payload fields are ignored, as channels-api ignored them. */
export const ChannelsPayload = Type.Object({
  action: Type.String({ minLength: 1, maxLength: 64 }),
  pk: Type.Optional(Type.Union([Pk, Type.Null()])),
  data: Type.Optional(Type.Unknown()),
  request_id: Type.Optional(RequestId)
})

export const ChannelsFrame = Type.Object({
  stream: Type.String({ minLength: 1, maxLength: 128 }),
  payload: ChannelsPayload
}, { additionalProperties: false })

export type ChannelsFrame = Static<typeof ChannelsFrame>
export type ChannelsPayload = Static<typeof ChannelsFrame>['payload']
export type Pk = string | number

const check = TypeCompiler.Compile(ChannelsFrame)

/** Whether a parsed JSON value is meant as a channels-api frame. */
export function isChannelsFrame (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && 'stream' in value && 'payload' in value
}

/** Validates a channels-api frame; throws BadFrameError naming the field. */
export function validateChannelsFrame (value: Record<string, unknown>): ChannelsFrame {
  if (deeperThan(value, MAX_DEPTH)) throw new BadFrameError(`channels-api frame is nested deeper than ${MAX_DEPTH} levels`)
  if (check.Check(value)) {
    checkPk(value.payload)
    return value
  }
  const error = check.Errors(value).First()
  /* c8 ignore next */
  if (error === undefined) throw new BadFrameError('invalid channels-api frame')
  const field = error.path.replace(/^\//, '').replace(/\//g, '.')
  if (field !== 'stream' && !field.startsWith('payload')) {
    throw new BadFrameError(`unknown field "${field}" in channels-api frame (allowed: stream, payload)`)
  }
  throw new BadFrameError(`invalid "${field}" in channels-api frame: ${describeExpected(error.schema, error.value) ?? error.message.toLowerCase()}`)
}

/** The pk an action will put in a URL (payload.pk, else data.pk: see targetOf) must be encodable. */
function checkPk (payload: ChannelsPayload): void {
  const data = payload.data as { pk?: unknown } | null | undefined
  const [field, pk] = payload.pk === undefined || payload.pk === null
    ? ['payload.data.pk', typeof data === 'object' && data !== null ? data.pk : undefined]
    : ['payload.pk', payload.pk]
  if (typeof pk === 'string' && !wellFormed(pk)) {
    throw new BadFrameError(`invalid "${field}" in channels-api frame: not well-formed Unicode (a lone surrogate)`)
  }
}

/** What an answer echoes of a frame that may have failed validation. */
export interface Echo {
  stream: string | null
  action: string | null
  requestId: string | number | null
}

export function echoOf (value: Record<string, unknown>): Echo {
  const payload = (typeof value.payload === 'object' && value.payload !== null ? value.payload : {}) as Record<string, unknown>
  const action = payload.action
  const requestId = payload.request_id
  return {
    stream: typeof value.stream === 'string' ? value.stream : null,
    action: typeof action === 'string' ? action : null,
    requestId: typeof requestId === 'string' || typeof requestId === 'number' ? requestId : null
  }
}

/** The answer to one request, channels-api's `reply()`. */
export interface Answer {
  status: number
  data?: unknown
  errors?: unknown[]
  /** Extra payload fields (list pagination). */
  extra?: Record<string, unknown>
}

export function answerFrame (echo: Echo, answer: Answer): string {
  return JSON.stringify({
    stream: echo.stream,
    payload: {
      action: echo.action,
      data: answer.data ?? null,
      errors: answer.errors ?? [],
      response_status: answer.status,
      request_id: echo.requestId,
      ...answer.extra
    }
  })
}

/** An event for a subscription, as channels-api's binding sent it; `pk` and `data` are JSON texts, spliced as they are. */
export function eventFrame (stream: string, action: string, pk: string, data: string, model: string): string {
  return `{"stream":${JSON.stringify(stream)},"payload":{"action":${JSON.stringify(action)},"pk":${pk},"data":${data},"model":${JSON.stringify(model)}}}`
}
