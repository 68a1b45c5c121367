/**
 * One fixture builds every test app: a database with the test's tables, an app
 * with the plugin and the test's routes, clients; all closed at teardown, in
 * reverse order, even when the setup fails halfway. `tasksFixture` is the
 * tasks app most behaviour tests share, built on `appFixture`.
 */
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Knex } from 'knex'
import type { Test } from 'tap'
import restLive, { type RestLiveOptions } from '../../lib/index.js'
import { authenticateByBearer, collectingLogger, tasksRoutes, type BuildOptions, type LogLine } from './app.js'
import { connect, createTasksTable, uniqueName, type Dialect } from './db.js'
import { TestClient, type Frame } from './ws-client.js'

export interface AppFixtureOptions<Tables> {
  dialect?: Dialect
  /** A database other than `connect(dialect)` (a pragma, a pool setting); destroyed at teardown all the same. */
  knex?: () => Knex
  /**
   * Creates the test's tables; `name(base)` gives a unique table name and
   * drops that table at teardown (last named, first dropped: children before parents).
   */
  tables?: (db: Knex, name: (base: string) => string) => Promise<Tables>
  /** Fastify's server options (the logger is `logs` when given). */
  server?: FastifyServerOptions
  /** Collects the app's log lines (warn and above). */
  logs?: LogLine[]
  /** Runs before the plugin is registered: hooks the upgrade must see, request decorators. */
  before?: (app: FastifyInstance, db: Knex, tables: Tables) => void
  /** Options of the plugin (`knex` is the fixture's database). */
  plugin?: Partial<RestLiveOptions>
  /** Declares the routes, after the plugin. */
  routes?: (app: FastifyInstance, db: Knex, tables: Tables) => void | Promise<void>
  /** Listens on a free port of 127.0.0.1 (`url`), for tests that need real sockets. */
  listen?: boolean
}

export interface AppFixture<Tables> {
  app: FastifyInstance
  db: Knex
  tables: Tables
  /** `http://127.0.0.1:<port>` when `listen` was asked, else undefined. */
  url: string | undefined
  /** A connected client (injected socket); closed at teardown. */
  connect: (headers?: Record<string, string>, path?: string) => Promise<TestClient>
  /** Waits until every broadcast so far reached every client of `connect`. */
  flush: () => Promise<void>
}

export async function appFixture<Tables = undefined> (t: Pick<Test, 'teardown'>, options: AppFixtureOptions<Tables> = {}): Promise<AppFixture<Tables>> {
  const db = options.knex?.() ?? connect(options.dialect ?? 'sqlite')
  const named: string[] = []
  const clients: TestClient[] = []
  // registered before anything can fail, so a failed setup still closes what it opened
  const opened: { app?: FastifyInstance } = {}
  t.teardown(async () => {
    for (const client of clients) client.close()
    await opened.app?.close()
    for (const table of named.reverse()) await db.schema.dropTableIfExists(table)
    await db.destroy()
  })
  const name = (base: string): string => {
    const table = uniqueName(base)
    named.push(table)
    return table
  }
  const tables = await options.tables?.(db, name) as Tables
  const logger = options.logs === undefined ? options.server?.logger ?? false : collectingLogger(options.logs)
  const app = Fastify({ ...options.server, logger })
  opened.app = app
  options.before?.(app, db, tables)
  await app.register(restLive, { knex: db, ...options.plugin })
  await options.routes?.(app, db, tables)
  const url = options.listen === true ? await app.listen({ port: 0, host: '127.0.0.1' }) : undefined
  await app.ready()
  return {
    app,
    db,
    tables,
    url,
    connect: async (headers = {}, path) => {
      const client = await TestClient.connect(app, headers, path)
      clients.push(client)
      return client
    },
    flush: async () => { for (const client of clients) await client.flush(app) }
  }
}

/** The `tables` step for one tasks table (helpers/db.ts) named after `base`. */
export function tasksTable (base = 'tasks'): (db: Knex, name: (base: string) => string) => Promise<string> {
  return async (db, name) => {
    const table = name(base)
    await createTasksTable(db, table)
    return table
  }
}

export interface Fixture {
  app: FastifyInstance
  db: Knex
  table: string
  /** A connected client for a user; closed at teardown. */
  user: (userId: number) => Promise<TestClient>
  /** A connected client with these headers (none: anonymous); closed at teardown. */
  connect: (headers?: Record<string, string>, path?: string) => Promise<TestClient>
  /** Waits until every broadcast so far reached every client. */
  flush: () => Promise<void>
}

export interface FixtureOptions {
  dialect?: Dialect
  /** Table name prefix (the table is unique per call). */
  prefix?: string
  /** Routes without queryset: the refetch path. */
  noQueryset?: boolean
  plugin?: BuildOptions['plugin']
  configure?: BuildOptions['configure']
  scope?: BuildOptions['scope']
  /** Collects the app's log lines (warn and above). */
  logs?: BuildOptions['logs']
  logger?: BuildOptions['logger']
  /** Rows in the table before the app starts. */
  rows?: Array<Record<string, unknown>>
}

/** The tasks app (helpers/app.ts) on a fresh tasks table. */
export async function tasksFixture (t: Pick<Test, 'teardown'>, options: FixtureOptions = {}): Promise<Fixture> {
  const fixture = await appFixture(t, {
    dialect: options.dialect,
    tables: async (db, name) => {
      const table = name(options.prefix ?? 'tasks')
      await createTasksTable(db, table)
      if (options.rows !== undefined && options.rows.length > 0) await db(table).insert(options.rows)
      return table
    },
    server: { logger: options.logger ?? false },
    logs: options.logs,
    before: authenticateByBearer,
    plugin: options.plugin,
    routes: (app, db, table) => { tasksRoutes(app, { db, table, noQueryset: options.noQueryset === true, configure: options.configure, scope: options.scope }) }
  })
  return {
    app: fixture.app,
    db: fixture.db,
    table: fixture.tables,
    user: async (userId) => await fixture.connect({ authorization: `Bearer ${userId}` }),
    connect: fixture.connect,
    flush: fixture.flush
  }
}

/** Broadcasts of one subscription as [action, instance]. */
export function told (client: TestClient, id: string | number): Array<[unknown, unknown]> {
  return client.broadcasts(id).map((frame: Frame) => [frame.action, frame.instance])
}

/** A task as the routes serialize it. */
export const task = (id: number, title: string, owner = 1, done = false): Record<string, unknown> => ({ id, title, owner_id: owner, done })
