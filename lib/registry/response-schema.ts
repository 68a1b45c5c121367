/**
 * How REST serializes a realtime route's answer, so that frames carry the same
 * bytes: the route's own compiled response serializer, picked the way Fastify's
 * reply picks it for a 200 (fastify/lib/schemas.js `getSchemaSerializer`).
 *
 * - The schema of status '200', else '2xx', else 'default' (keys compared
 *   lowercased, as Fastify stores them). None of them: Fastify sends
 *   JSON.stringify of the answer, every column included, and so do frames.
 * - A per-content-type map (`{ content: { [mediaType]: { schema } } }`) is looked up
 *   with the reply's content type: a handler returning rows gets
 *   `application/json`, so its schema, else the wildcard media type's. With
 *   neither Fastify falls back to JSON.stringify (every column); the route is
 *   refused instead of following it.
 * - A list route's frames carry one row at a time: each is serialized by the
 *   route's array serializer as a one-row array, without its brackets, which is
 *   byte for byte the row's part of the REST array (fast-json-stringify writes
 *   `[` + items joined by `,` + `]`). So its schema must be an array with one
 *   items schema.
 */
import type { FastifyReply } from 'fastify'
import { RealtimeConfigError, UnserializableRouteError } from '../errors.js'
import type { Row } from '../types.js'

/** The response schema Fastify serializes a route's 200 answer with. */
export interface SuccessResponse {
  /** The key Fastify compiled it under: '200', '2xx' or 'default'. */
  status: string
  /** The media type picked from a per-content-type map; undefined for a plain schema. */
  contentType: string | undefined
}

/** Where shared schemas (`app.addSchema`) are found: the instance a route is registered on. */
export interface SchemaScope {
  getSchemas (): Record<string, unknown>
}

export interface RouteShape {
  url: string
  kind: 'list' | 'retrieve'
  lookup: string
  pk: string
}

const STATUSES = ['200', '2xx', 'default']
/** What a reply with rows gets when the handler sets no type (fastify/lib/reply.js). */
const REPLY_MEDIA_TYPE = 'application/json'
const ANY_MEDIA_TYPE = '*/*'

type Schema = Record<string, unknown>

function isObject (value: unknown): value is Schema {
  return typeof value === 'object' && value !== null
}

function own (object: Schema, key: string): unknown {
  return Object.hasOwn(object, key) ? object[key] : undefined
}

/** A schema and the document its local `#/…` references point into. */
interface Located {
  schema: unknown
  root: unknown
}

function pointerTarget (root: unknown, pointer: string): unknown {
  if (pointer === '') return root
  if (!pointer.startsWith('/')) return undefined // a named anchor: not followed
  let node = root
  for (const raw of pointer.slice(1).split('/')) {
    const part = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~')
    node = isObject(node) ? own(node, part) : undefined
  }
  return node
}

/** Schemas by `$id`: the shared ones and those nested in them (fast-json-stringify resolves both). */
export function schemaIds (schemas: Schema): Map<string, unknown> {
  const ids = new Map<string, unknown>()
  const seen = new Set<unknown>()
  const walk = (node: unknown): void => {
    if (!isObject(node) || seen.has(node)) return
    seen.add(node)
    if (typeof node.$id === 'string' && !ids.has(node.$id)) ids.set(node.$id, node)
    for (const child of Object.values(node)) walk(child)
  }
  for (const [id, schema] of Object.entries(schemas)) {
    ids.set(id, schema)
    walk(schema)
  }
  return ids
}

/** Follows `$ref`s to the schema they name: `id#/pointer` into a schema by its $id, `#/pointer` into the same document. */
export function deref (located: Located, ids: Map<string, unknown>): Located | undefined {
  let { schema, root } = located
  const seen = new Set<unknown>()
  while (isObject(schema) && typeof schema.$ref === 'string') {
    if (seen.has(schema)) return undefined // a loop
    seen.add(schema)
    const ref = schema.$ref
    const hash = ref.indexOf('#')
    const base = hash === -1 ? ref : ref.slice(0, hash)
    if (base !== '') root = ids.get(base)
    schema = pointerTarget(root, hash === -1 ? '' : ref.slice(hash + 1))
  }
  return schema === undefined ? undefined : { schema, root }
}

function isArraySchema (schema: unknown): schema is Schema {
  if (!isObject(schema)) return false
  return schema.type === 'array' || (Array.isArray(schema.type) && schema.type.includes('array'))
}

/**
 * The success response of a route, checked at startup: refuses (throws) what
 * cannot be serialized as REST does, and a schema that drops the primary key.
 */
export function successResponse (route: RouteShape, routeSchema: unknown, schemas: Schema): SuccessResponse | undefined {
  const responses = isObject(routeSchema) ? routeSchema.response : undefined
  if (!isObject(responses)) return undefined
  let status: string | undefined
  let key: string | undefined
  for (const wanted of STATUSES) {
    // Fastify lowercases the keys when compiling; a later spelling overwrites an earlier one
    key = Object.keys(responses).filter((name) => name.toLowerCase() === wanted).pop()
    if (key !== undefined) {
      status = wanted
      break
    }
  }
  if (status === undefined || key === undefined) return undefined
  const entry = responses[key]
  let contentType: string | undefined
  let schema = entry
  if (isObject(entry) && isObject(entry.content)) {
    const content = entry.content
    contentType = [REPLY_MEDIA_TYPE, ANY_MEDIA_TYPE].find((mediaType) => Object.hasOwn(content, mediaType))
    if (contentType === undefined) {
      throw new UnserializableRouteError(route.url, `its '${key}' response is a per-content-type map without '${REPLY_MEDIA_TYPE}' or '${ANY_MEDIA_TYPE}'. ` +
        `Fastify serializes the rows a handler returns as ${REPLY_MEDIA_TYPE} with neither, sending every column; add content['${REPLY_MEDIA_TYPE}'] with the schema of the JSON answer`)
    }
    schema = (content[contentType] as Schema).schema
  }
  checkShape(route, key, { schema, root: schema }, schemaIds(schemas))
  return { status, contentType }
}

function checkShape (route: RouteShape, key: string, located: Located, ids: Map<string, unknown>): void {
  let item: Located | undefined
  if (route.kind === 'list') {
    const array = deref(located, ids)
    if (array === undefined) {
      throw new UnserializableRouteError(route.url, `its '${key}' response schema has a $ref that does not lead to a schema added with app.addSchema() (by its $id) or to one inside the same schema, ` +
        "so it cannot be checked to be an array; refer to shared schemas as '<$id>#' or '<$id>#/<json pointer>'")
    }
    if (!isArraySchema(array.schema)) {
      throw new UnserializableRouteError(route.url, `it is a list route (its URL has no ':${route.lookup}' parameter), but its '${key}' response schema is not an array. ` +
        "Subscribers get rows one at a time, each serialized as an item of the route's array: give it { type: 'array', items: <row schema> }, " +
        'or make it a retrieve route (config.realtime.lookup names the URL parameter of one instance)')
    }
    const items = array.schema.items
    if (Array.isArray(items)) {
      throw new UnserializableRouteError(route.url, `its '${key}' response schema's items is a list of schemas (a tuple), so rows would be serialized by their position; give it one items schema`)
    }
    item = items === undefined ? undefined : deref({ schema: items, root: array.root }, ids)
  } else {
    item = deref(located, ids)
  }
  const properties = item !== undefined && isObject(item.schema) ? item.schema.properties : undefined
  if (isObject(properties) && !Object.hasOwn(properties, route.pk)) {
    throw new RealtimeConfigError(route.url, `its response schema drops the primary key '${route.pk}', so subscribers could not tell rows apart; add it to the schema or set config.realtime.pk`)
  }
}

/**
 * The route's own compiled serializer for one row, taken from a reply of the
 * route (Fastify compiled it before the route could answer). Called once per route.
 */
export function rowSerializer (kind: RouteShape['kind'], response: SuccessResponse | undefined, reply: FastifyReply): (row: Row) => string {
  // no success schema: REST sends JSON.stringify of the rows, every column included
  if (response === undefined) return JSON.stringify
  const compiled = reply.getSerializationFunction(response.status, response.contentType)
  /* c8 ignore next 3: Fastify compiles every response schema of a route before it answers */
  if (compiled === undefined) {
    throw new Error(`fastify-rest-live: no compiled '${response.status}' serializer on route ${reply.request.routeOptions.url ?? ''}`)
  }
  if (kind === 'list') return (row) => compiled([row] as unknown as Row).slice(1, -1)
  return (row) => compiled(row)
}
