/**
 * A tasks application like the one in the README: list and retrieve routes
 * with querysets scoped to the authenticated user, plus create/update/delete.
 * Users authenticate with `authorization: Bearer <user id>`.
 */
import Fastify, { type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import type { Knex } from 'knex'
import restLive, { type RestLiveOptions } from '../../lib/index.js'

declare module 'fastify' {
  interface FastifyRequest {
    userId: number | undefined
  }
}

export const TaskSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    title: { type: 'string' },
    owner_id: { type: 'integer' },
    done: { type: 'boolean' }
  },
  required: ['id', 'title', 'owner_id', 'done']
} as const

export interface TasksApp {
  app: FastifyInstance
  db: Knex
  table: string
}

export interface BuildOptions {
  db: Knex
  table: string
  plugin?: Partial<RestLiveOptions>
  /** Skip the queryset: the refetch path. */
  noQueryset?: boolean
  /** Collects the app's log lines (warn and above), parsed. */
  logs?: LogLine[]
  /** Fastify's logger option (default: no logging; `logs` wins). */
  logger?: FastifyServerOptions['logger']
  /** Called after the plugin is registered, before the routes: extra hooks, resources. */
  configure?: (app: FastifyInstance) => void
  /** Whose tasks a user sees (default: their own). */
  scope?: (userId: number) => number
}

/** One line of Fastify's (pino's) JSON log. */
export interface LogLine {
  level: number
  msg: string
  [field: string]: unknown
}

/** A Fastify logger that appends each line (warn and above) to `logs`. */
export function collectingLogger (logs: LogLine[]): { level: string, stream: { write: (line: string) => void } } {
  return { level: 'warn', stream: { write: (line) => { logs.push(JSON.parse(line) as LogLine) } } }
}

// the id columns are 32-bit integers: a larger value is a 400 here, not a database error (a 500) on PostgreSQL
const Id = { type: 'integer', minimum: 1, maximum: 2_147_483_647 } as const
const IdParams = { type: 'object', properties: { id: Id }, required: ['id'] } as const

function notFound (): Error {
  return Object.assign(new Error('not found'), { statusCode: 404 })
}

function requireUser (request: FastifyRequest): number {
  const userId = request.userId
  if (userId === undefined) throw Object.assign(new Error('authentication required'), { statusCode: 401 })
  return userId
}

export async function buildTasksApp (options: BuildOptions): Promise<TasksApp> {
  const { db, table } = options
  const app = Fastify({ logger: options.logs === undefined ? options.logger ?? false : collectingLogger(options.logs) })
  authenticateByBearer(app)
  await app.register(restLive, { knex: db, ...options.plugin })
  tasksRoutes(app, options)
  await app.ready()
  return { app, db, table }
}

/** `authorization: Bearer <user id>` sets `request.userId`; registered before the plugin, so upgrades see it too. */
export function authenticateByBearer (app: FastifyInstance): void {
  app.decorateRequest('userId', undefined)
  app.addHook('onRequest', async (request) => {
    const match = /^Bearer (\d+)$/.exec(request.headers.authorization ?? '')
    request.userId = match ? Number(match[1]) : undefined
  })
}

/** The tasks routes on an app that has the plugin and `authenticateByBearer`. */
export function tasksRoutes (app: FastifyInstance, options: Omit<BuildOptions, 'plugin' | 'logs' | 'logger'>): void {
  const { db, table } = options
  options.configure?.(app)
  const scope = options.scope ?? ((userId: number) => userId)

  const queryset = (request: FastifyRequest): Knex.QueryBuilder => {
    const query = request.query as { done?: boolean }
    const builder = db(table).where(`${table}.owner_id`, scope(requireUser(request))).orderBy(`${table}.id`)
    return query.done === undefined ? builder : builder.where(`${table}.done`, query.done)
  }
  const realtime = options.noQueryset === true ? { model: table } : { model: table, queryset }

  app.get('/tasks', {
    schema: {
      querystring: { type: 'object', properties: { done: { type: 'boolean' } }, additionalProperties: false },
      response: { 200: { type: 'array', items: TaskSchema } }
    },
    config: { realtime },
    handler: async (request) => {
      requireUser(request)
      return options.noQueryset === true ? await queryset(request) : await app.realtime.list(request)
    }
  })
  app.get('/tasks/:id', {
    schema: {
      params: IdParams,
      response: { 200: TaskSchema }
    },
    config: { realtime },
    handler: async (request, reply) => {
      requireUser(request)
      if (options.noQueryset !== true) return await app.realtime.retrieve(request)
      const row = await queryset(request).where(`${table}.id`, (request.params as { id: number }).id).first()
      if (row === undefined) throw notFound()
      return row
    }
  })
  app.post('/tasks', {
    schema: {
      body: { type: 'object', properties: { title: { type: 'string', minLength: 1 }, done: { type: 'boolean' } }, required: ['title'], additionalProperties: false },
      response: { 201: TaskSchema }
    },
    handler: async (request, reply) => {
      const owner = requireUser(request)
      const body = request.body as { title: string, done?: boolean }
      const [row] = await db(table).insert({ title: body.title, done: body.done ?? false, owner_id: owner }).returning('*')
      return await reply.code(201).send(row)
    }
  })
  app.patch('/tasks/:id', {
    schema: {
      params: IdParams,
      body: { type: 'object', properties: { title: { type: 'string' }, done: { type: 'boolean' }, owner_id: Id }, additionalProperties: false },
      response: { 200: TaskSchema }
    },
    handler: async (request, reply) => {
      const owner = requireUser(request)
      const id = (request.params as { id: number }).id
      // nothing left to set (Fastify drops unknown fields) would be an empty UPDATE, which Knex refuses
      if (Object.keys(request.body as object).length === 0) throw Object.assign(new Error('nothing to update'), { statusCode: 400 })
      const changed = await db(table).where({ id, owner_id: owner }).update(request.body as object)
      if (changed === 0) throw notFound()
      return await db(table).where({ id }).first()
    }
  })
  app.delete('/tasks/:id', {
    schema: { params: IdParams },
    handler: async (request, reply) => {
      const owner = requireUser(request)
      const id = (request.params as { id: number }).id
      const deleted = await db(table).where({ id, owner_id: owner }).del()
      return await reply.code(deleted === 0 ? 404 : 204).send()
    }
  })
}
