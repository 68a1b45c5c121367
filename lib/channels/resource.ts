/**
 * channels-api resources (streams) and how each action maps onto the app's own
 * REST routes under the resource's prefix:
 *
 *   list      GET    prefix            (paginated)
 *   create    POST   prefix
 *   retrieve  GET    prefix/:pk
 *   update    PATCH  prefix/:pk        (PUT when there is no PATCH)
 *   delete    DELETE prefix/:pk
 *   <custom>  POST (else GET) prefix/:pk/<action> with a pk, prefix/<action> without
 *
 * An action with no route to run is channels-api's 400 "Invalid Action".
 */
import { Type } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { FastifyInstance, HTTPMethods } from 'fastify'
import { InvalidResourceError } from '../errors.js'
import type { ResourceOptions } from '../types.js'
import { FieldsCheck, describe } from '../validation.js'
import type { Pk } from './frames.js'

export const DEFAULT_PAGE_SIZE = 25
export const MAX_PAGE_SIZE = 1000
export const INVALID_ACTION = 'Invalid Action'
export const INVALID_PAGE = 'Invalid page.'

export interface Resource {
  stream: string
  prefix: string
  pageSize: number
  model: string | undefined
}

const PREFIX = /^(\/[^/:*?#\s]+)+$/
const ACTION_NAME = /^[A-Za-z0-9_-]+$/

const checkStream = TypeCompiler.Compile(Type.String({ minLength: 1, maxLength: 128 }))
const optionsCheck = new FieldsCheck('resource option', {
  prefix: { schema: Type.String({ pattern: PREFIX.source }), must: (stream) => `must be a path like '/${stream}' (starting with '/', no trailing '/', no parameters)` },
  pageSize: { schema: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE })), must: `must be an integer from 1 to ${MAX_PAGE_SIZE}` },
  model: { schema: Type.Optional(Type.String({ minLength: 1 })), must: 'must be a non-empty string: the model named in event frames' }
})

/** The declared resources, by stream. */
export class ResourceTable {
  readonly #byStream = new Map<string, Resource>()

  declare (stream: unknown, options: unknown): Resource {
    if (!checkStream.Check(stream)) {
      throw new InvalidResourceError("'stream'", `must be a non-empty string of at most 128 characters, got ${describe(stream)}`)
    }
    if (options === null || typeof options !== 'object' || Array.isArray(options)) {
      throw new InvalidResourceError("'options'", `must be an object like { prefix: '/${stream}' }, got ${describe(options)}`)
    }
    const problem = optionsCheck.problem(options, stream)
    if (problem !== undefined) throw new InvalidResourceError(`'${problem.field}'`, problem.detail)
    const { prefix, pageSize, model } = options as ResourceOptions
    const existing = this.#byStream.get(stream)
    if (existing !== undefined) {
      throw new InvalidResourceError("'stream'", `${JSON.stringify(stream)} is already declared (prefix ${existing.prefix})`)
    }
    const resource: Resource = { stream, prefix, pageSize: pageSize ?? DEFAULT_PAGE_SIZE, model }
    this.#byStream.set(stream, resource)
    return resource
  }

  get (stream: string): Resource | undefined {
    return this.#byStream.get(stream)
  }

  streams (): string[] {
    return [...this.#byStream.keys()]
  }
}

export type Plan =
  | { kind: 'run', method: HTTPMethods, url: string, body: unknown, page: number | undefined }
  | { kind: 'refuse', status: number, errors: string[] }

const invalidAction: Plan = { kind: 'refuse', status: 400, errors: [INVALID_ACTION] }

function isObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/** `data` as a query string, for a GET (list filters, a GET custom action's arguments). */
export function queryOf (data: unknown, omit?: string): string {
  if (!isObject(data)) return ''
  const search = new URLSearchParams()
  for (const [name, value] of Object.entries(data)) {
    if (name === omit || value === undefined || value === null) continue
    for (const item of Array.isArray(value) ? value as unknown[] : [value]) {
      search.append(name, typeof item === 'object' ? JSON.stringify(item) : String(item))
    }
  }
  const text = search.toString()
  return text === '' ? '' : `?${text}`
}

/** The page a list asks for (`data.page`, default 1), or undefined when it is not a positive integer. */
export function pageOf (data: unknown): number | undefined {
  const raw = isObject(data) ? data.page : undefined
  if (raw === undefined || raw === null) return 1
  const page = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : raw
  return typeof page === 'number' && Number.isInteger(page) && page >= 1 ? page : undefined
}

/** What running `action` means for this resource, given the app's routes. */
export function planAction (app: FastifyInstance, resource: Resource, action: string, pk: Pk | undefined, data: unknown): Plan {
  const { prefix } = resource
  const has = (method: HTTPMethods, url: string): boolean => app.hasRoute({ method, url })
  const detail = `${prefix}/:pk`
  const at = (value: Pk): string => `${prefix}/${encodeURIComponent(String(value))}`
  const run = (method: HTTPMethods, url: string, body?: unknown, page?: number): Plan => ({ kind: 'run', method, url, body, page })
  const needsPk: Plan = { kind: 'refuse', status: 400, errors: [`action "${action}" needs a pk`] }
  switch (action) {
    case 'list': {
      if (!has('GET', prefix)) return invalidAction
      const page = pageOf(data)
      if (page === undefined) return { kind: 'refuse', status: 400, errors: [INVALID_PAGE] }
      return run('GET', prefix + queryOf(data, 'page'), undefined, page)
    }
    case 'create':
      return has('POST', prefix) ? run('POST', prefix, data) : invalidAction
    case 'retrieve':
    case 'delete': {
      const method = action === 'retrieve' ? 'GET' : 'DELETE'
      if (!has(method, detail)) return invalidAction
      return pk === undefined ? needsPk : run(method, at(pk))
    }
    case 'update': {
      const method = has('PATCH', detail) ? 'PATCH' : has('PUT', detail) ? 'PUT' : undefined
      if (method === undefined) return invalidAction
      return pk === undefined ? needsPk : run(method, at(pk), data)
    }
    default: {
      if (!ACTION_NAME.test(action)) return invalidAction
      const pattern = pk === undefined ? `${prefix}/${action}` : `${detail}/${action}`
      const url = pk === undefined ? pattern : `${at(pk)}/${action}`
      if (has('POST', pattern)) return run('POST', url, data)
      return has('GET', pattern) ? run('GET', url + queryOf(data)) : invalidAction
    }
  }
}
