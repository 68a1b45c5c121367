/**
 * The tasks app on a fresh table, with per-user clients that are closed at
 * teardown: the setup most behaviour tests share.
 */
import type { FastifyInstance } from 'fastify'
import type { Knex } from 'knex'
import type { Test } from 'tap'
import { buildTasksApp, type BuildOptions } from './app.js'
import { connect, createTasksTable, uniqueName, type Dialect } from './db.js'
import { TestClient, type Frame } from './ws-client.js'

export interface Fixture {
  app: FastifyInstance
  db: Knex
  table: string
  /** A connected client for a user; closed at teardown. */
  user: (userId: number) => Promise<TestClient>
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

export async function tasksFixture (t: Pick<Test, 'teardown'>, options: FixtureOptions = {}): Promise<Fixture> {
  const db = connect(options.dialect ?? 'sqlite')
  const table = uniqueName(options.prefix ?? 'tasks')
  const clients: TestClient[] = []
  // registered before anything can fail, so a failed setup still closes what it opened
  const opened: { app?: FastifyInstance } = {}
  t.teardown(async () => {
    for (const client of clients) client.close()
    await opened.app?.close()
    await db.schema.dropTableIfExists(table)
    await db.destroy()
  })
  await createTasksTable(db, table)
  if (options.rows !== undefined && options.rows.length > 0) await db(table).insert(options.rows)
  const { app } = await buildTasksApp({ db, table, noQueryset: options.noQueryset === true, plugin: options.plugin, configure: options.configure, scope: options.scope, logs: options.logs, logger: options.logger })
  opened.app = app
  return {
    app,
    db,
    table,
    user: async (userId) => {
      const client = await TestClient.connect(app, { authorization: `Bearer ${userId}` })
      clients.push(client)
      return client
    },
    flush: async () => { for (const client of clients) await client.flush(app) }
  }
}

/** Broadcasts of one subscription as [action, instance]. */
export function told (client: TestClient, id: string | number): Array<[unknown, unknown]> {
  return client.broadcasts(id).map((frame: Frame) => [frame.action, frame.instance])
}

/** A task as the routes serialize it. */
export const task = (id: number, title: string, owner = 1, done = false): Record<string, unknown> => ({ id, title, owner_id: owner, done })
