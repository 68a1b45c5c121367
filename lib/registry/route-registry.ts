/**
 * The realtime routes, discovered in `onRoute` like @fastify/swagger does, and
 * found again by model + action (django-rest-live frames) or by URL.
 */
import { Type } from '@sinclair/typebox'
import type { FastifyReply, RouteOptions } from 'fastify'
import { BadFrameError, NoRouteError, QuerysetModelError, RealtimeConfigError, RealtimeMethodError } from '../errors.js'
import type { RealtimeRouteConfig, Row } from '../types.js'
import { FieldsCheck, describe } from '../validation.js'
import { rowSerializer, successResponse, type SchemaScope, type SuccessResponse } from './response-schema.js'

export type RouteKind = 'list' | 'retrieve'

export interface RealtimeRoute {
  /**
   * Unique per registered route (two routes may share a URL, told apart by
   * constraints). Everything that shapes a frame (URL pattern, serializer,
   * lookup, pk, list or retrieve) belongs to one route, so views are never
   * shared across routes: their keys start with this id.
   */
  id: number
  url: string
  model: string
  kind: RouteKind
  lookup: string
  pk: string
  /** Path parameter names, in order. */
  params: string[]
  queryset: RealtimeRouteConfig['queryset']
  /** The response schema REST serializes a 200 with; undefined when there is none (JSON.stringify). Set when the app is ready. */
  response: SuccessResponse | undefined
  /** Serializes one row as the REST response would; kept by the registry (serializerOf). */
  serialize: ((row: Row) => string) | undefined
  /** The route's own expiry hook, in place of the plugin's. */
  expiresAt?: RealtimeRouteConfig['expiresAt']
}

const configCheck = new FieldsCheck('config.realtime key', {
  model: { schema: Type.Optional(Type.String({ minLength: 1 })), must: "must be the name of the table the route follows, like 'tasks'" },
  queryset: { schema: Type.Optional(Type.Function([Type.Unknown()], Type.Unknown())), must: "must be a function (request) => knex query builder, like (request) => db('tasks').where(...)" },
  lookup: { schema: Type.Optional(Type.String({ minLength: 1 })), must: "must be a non-empty string: the column a retrieve finds its instance by, named as the route's parameter ('slug' for /tasks/:slug)" },
  pk: { schema: Type.Optional(Type.String({ minLength: 1 })), must: "must be a non-empty string: the table's primary-key column (default 'id')" },
  expiresAt: { schema: Type.Optional(Type.Function([Type.Unknown()], Type.Unknown())), must: 'must be a function (request) => Date | number | undefined' }
})

function validateConfig (url: string, config: unknown): RealtimeRouteConfig {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new RealtimeConfigError(url, `expected an object like { model, queryset }, got ${describe(config)}`)
  }
  const problem = configCheck.problem(config, url)
  if (problem !== undefined) throw new RealtimeConfigError(url, `'${problem.field}' ${problem.detail}`)
  const valid = config as RealtimeRouteConfig
  // without it, the table is learnt from a queryset that takes no request (QuerysetCheck.tableOf)
  if (valid.model === undefined && valid.queryset === undefined) {
    throw new RealtimeConfigError(url, "'model' must be the name of the table the route follows, like 'tasks' (only a queryset that takes no request can stand in for it), got nothing")
  }
  return valid
}

function pathParams (url: string): string[] {
  return [...url.matchAll(/:([A-Za-z0-9_]+)/g)].map((match) => match[1] as string)
}

/** The table key a queryset reads when that can be known without a request (registry/queryset-check.ts). */
export type QuerysetTable = (url: string, queryset: NonNullable<RealtimeRouteConfig['queryset']>) => string | undefined

export class RouteRegistry {
  readonly #byUrl = new Map<string, RealtimeRoute>()
  readonly #byModel = new Map<string, RealtimeRoute[]>()
  /** Routes whose response schema is checked when the app is ready, once every shared schema is known. */
  readonly #unchecked: Array<{ route: RealtimeRoute, schema: unknown, scope: SchemaScope }> = []
  #nextId = 0
  /** Models by the key of the table they name (`tasks` and `public.tasks` are one table; see capture/table-names.ts). */
  readonly #byTable = new Map<string, string[]>()
  readonly #tableKey: (model: string) => string | undefined

  /**
   * The table a queryset that takes no request reads (it is called once, at
   * registration); undefined for one that takes the request.
   */
  readonly #querysetTable: QuerysetTable

  /** `tableKey`: the table a model names, or undefined when it names none (by default, the model itself). */
  constructor (tableKey: (model: string) => string | undefined = (model) => model, querysetTable: QuerysetTable = () => undefined) {
    this.#tableKey = tableKey
    this.#querysetTable = querysetTable
  }

  /** Records a route if it opts in; returns it, or undefined for ordinary routes. `scope` is the instance it is registered on. */
  add (route: RouteOptions, scope: SchemaScope): RealtimeRoute | undefined {
    const config = (route.config as { realtime?: unknown } | undefined)?.realtime
    if (config === undefined) return undefined
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    if (methods.length === 1 && methods[0] === 'HEAD') return undefined // the GET's twin
    if (methods.some((method) => method !== 'GET' && method !== 'HEAD')) {
      throw new RealtimeMethodError(methods.join(','), route.url)
    }
    const valid = validateConfig(route.url, config)
    const read = valid.queryset === undefined ? undefined : this.#querysetTable(route.url, valid.queryset)
    if (valid.model === undefined && read === undefined) {
      throw new RealtimeConfigError(route.url, "'model' is needed when the queryset takes the request (it cannot be called before a request comes) or reads no named table: set it to the table the queryset reads")
    }
    const model = valid.model ?? read as string
    const table = this.#tableKey(model)
    if (table === undefined) {
      throw new RealtimeConfigError(route.url, `'model' must name a table, optionally with its schema ('tasks', 'audit.tasks'), got '${model}'`)
    }
    if (read !== undefined && read !== table) throw new QuerysetModelError(route.url, model, read, read)
    const lookup = valid.lookup ?? 'id'
    const params = pathParams(route.url)
    const kind: RouteKind = params.includes(lookup) ? 'retrieve' : 'list'
    const pk = valid.pk ?? 'id'
    const realtime: RealtimeRoute = {
      id: ++this.#nextId,
      url: route.url,
      model,
      kind,
      lookup,
      pk,
      params,
      queryset: valid.queryset,
      response: undefined,
      serialize: undefined,
      expiresAt: valid.expiresAt
    }
    this.#unchecked.push({ route: realtime, schema: route.schema, scope })
    this.#byUrl.set(route.url, realtime)
    const forModel = this.#byModel.get(model) ?? []
    forModel.push(realtime)
    this.#byModel.set(model, forModel)
    const forTable = this.#byTable.get(table) ?? []
    if (!forTable.includes(model)) forTable.push(model)
    this.#byTable.set(table, forTable)
    return realtime
  }

  /**
   * Checks the response schemas of the routes added since the last call (at
   * onReady: a route may refer to a schema added after it) and records how REST
   * serializes each; throws for a route whose frames could not match REST.
   */
  checkResponses (): void {
    for (const { route, schema, scope } of this.#unchecked.splice(0)) {
      route.response = successResponse(route, schema, scope.getSchemas())
    }
  }

  /**
   * The route's own compiled row serializer. Fastify compiles a route's
   * serializers when it builds the route and hands them out only through a
   * reply of it, so it is taken from the first one (a subscription's probe),
   * then kept here for every view of the route.
   */
  serializerOf (route: RealtimeRoute, reply: FastifyReply): (row: Row) => string {
    route.serialize ??= rowSerializer(route.kind, route.response, reply)
    return route.serialize
  }

  byUrl (url: string | undefined): RealtimeRoute | undefined {
    return url === undefined ? undefined : this.#byUrl.get(url)
  }

  has (url: string): boolean {
    return this.#byUrl.has(url)
  }

  forModel (model: string): RealtimeRoute[] {
    return this.#byModel.get(model) ?? []
  }

  models (): string[] {
    return [...this.#byModel.keys()]
  }

  /** The keys of the tables realtime routes follow. */
  tables (): string[] {
    return [...this.#byTable.keys()]
  }

  /** The models whose routes follow this table (by its key): usually one. */
  modelsOfTable (table: string): string[] {
    return this.#byTable.get(table) ?? []
  }

  /** The primary key a model's routes use, if any route follows it. */
  pkOf (model: string): string | undefined {
    return this.#byModel.get(model)?.[0]?.pk
  }

  /** The one route of this model and kind, or a protocol error saying why not. */
  resolve (model: string, kind: RouteKind): RealtimeRoute {
    const routes = this.forModel(model)
    if (routes.length === 0) {
      throw new NoRouteError(`no realtime route follows model '${model}' (known models: ${this.models().join(', ') || 'none'})`)
    }
    const matching = routes.filter((route) => route.kind === kind)
    if (matching.length === 0) {
      throw new NoRouteError(`model '${model}' has no realtime ${kind} route (its routes: ${routes.map((r) => r.url).join(', ')})`)
    }
    if (matching.length > 1) {
      throw new BadFrameError(`model '${model}' has several ${kind} routes; subscribe with "path" to one of: ${matching.map((r) => r.url).join(', ')}`)
    }
    return matching[0] as RealtimeRoute
  }
}

/** The column a queryset is narrowed by: qualified, so joins stay unambiguous. */
export function pkColumn (route: Pick<RealtimeRoute, 'model' | 'pk'>): string {
  return `${route.model}.${route.pk}`
}

/** The column a retrieve searches by its URL parameter (DRF's lookup_field): qualified like pkColumn. */
export function lookupColumn (route: Pick<RealtimeRoute, 'model' | 'lookup'>): string {
  return `${route.model}.${route.lookup}`
}
