/**
 * Changes the database makes by itself: ON DELETE / ON UPDATE foreign key
 * actions change child rows that no RETURNING reports. Writes to the parents
 * of followed tables are captured (even when no route follows them), and every
 * view of an affected child model is re-checked: deleting a project takes its
 * tasks out of every live task list.
 */
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import type { Knex } from 'knex'
import type { LogLine } from './helpers/app.js'
import { knex, postgres, postgresAvailable, type Dialect } from './helpers/db.js'
import { appFixture, told } from './helpers/fixture.js'

const dialects: Dialect[] = ['sqlite']
if (await postgresAvailable()) dialects.push('postgres')
else t.comment('PostgreSQL is not reachable: running the SQLite half only')

/** SQLite runs foreign key actions only with the pragma on, per connection. */
function connectWithForeignKeys (dialect: Dialect): Knex {
  if (dialect === 'postgres') return postgres()
  return knex({
    client: 'better-sqlite3',
    connection: { filename: ':memory:' },
    useNullAsDefault: true,
    pool: { afterCreate: (connection: { pragma: (sql: string) => unknown }, done: (err: Error | null, connection: unknown) => void) => { connection.pragma('foreign_keys = on'); done(null, connection) } }
  })
}

interface Schema {
  projects: string
  tasks: string
}

/**
 * projects(id, code unique, name); tasks(id, title, project_id → projects ON DELETE CASCADE,
 * project_code → projects(code) ON UPDATE CASCADE, reviewer → projects ON DELETE SET NULL)
 */
async function projectsAndTasks (db: Knex, name: (base: string) => string): Promise<Schema> {
  const projects = name('projects')
  const tasks = name('ptasks')
  await db.schema.createTable(projects, (table) => {
    table.increments('id').primary()
    table.string('code').notNullable().unique()
    table.string('name')
    table.integer('version').notNullable().defaultTo(0)
  })
  await db.schema.createTable(tasks, (table) => {
    table.increments('id').primary()
    table.string('title').notNullable()
    table.integer('project_id').references('id').inTable(projects).onDelete('CASCADE')
    table.string('project_code').references('code').inTable(projects).onUpdate('CASCADE')
    table.integer('reviewer').nullable().references('id').inTable(projects).onDelete('SET NULL')
  })
  return { projects, tasks }
}

const TaskRow = {
  type: 'object',
  properties: { id: { type: 'integer' }, title: { type: 'string' }, project_id: { type: 'integer' }, project_code: { type: 'string' }, reviewer: { type: ['integer', 'null'] } }
} as const

/** A task list route, filtered by `?code=` (project_code) and `?reviewed=true` (a reviewer is set). */
function tasksRoutes (app: FastifyInstance, db: Knex, { tasks }: Schema): void {
  app.get('/tasks', {
    schema: {
      querystring: { type: 'object', properties: { code: { type: 'string' }, reviewed: { type: 'boolean' } }, additionalProperties: false },
      response: { 200: { type: 'array', items: TaskRow } }
    },
    config: {
      realtime: {
        model: tasks,
        queryset: (request) => {
          const query = request.query as { code?: string, reviewed?: boolean }
          let builder = db(tasks).orderBy('id')
          if (query.code !== undefined) builder = builder.where('project_code', query.code)
          if (query.reviewed === true) builder = builder.whereNotNull('reviewer')
          return builder
        }
      }
    },
    handler: async (request) => await app.realtime.list(request)
  })
}

const row = (id: number, title: string, project: number, code: string, reviewer: number | null): Record<string, unknown> =>
  ({ id, title, project_id: project, project_code: code, reviewer })

for (const dialect of dialects) {
  t.test(`${dialect}: ON DELETE CASCADE, ON UPDATE CASCADE and ON DELETE SET NULL reach live task lists`, async (t) => {
    const { app, db, tables: { projects, tasks }, connect } = await appFixture(t, {
      knex: () => connectWithForeignKeys(dialect),
      tables: async (db, name) => {
        const schema = await projectsAndTasks(db, name)
        await db(schema.projects).insert([{ code: 'A', name: 'alpha' }, { code: 'B', name: 'beta' }])
        await db(schema.tasks).insert([
          { title: 't1', project_id: 1, project_code: 'A', reviewer: 2 },
          { title: 't2', project_id: 1, project_code: 'A', reviewer: null },
          { title: 't3', project_id: 2, project_code: 'B', reviewer: 1 }
        ])
        return schema
      },
      routes: tasksRoutes
    })
    const client = await connect()
    await client.subscribe({ id: 'all', model: tasks, action: 'list' })
    await client.subscribe({ id: 'A', model: tasks, action: 'list', query_params: { code: 'A' } })
    await client.subscribe({ id: 'reviewed', model: tasks, action: 'list', query_params: { reviewed: true } })
    const statements: string[] = []
    db.on('query', (query: { sql: string }) => { statements.push(query.sql) })
    const checks = (): number => app.realtime.stats().databaseChecks

    // ON UPDATE CASCADE: project 1's code changes in its tasks
    await db(projects).where({ id: 1 }).update({ code: 'Z' })
    await client.flush(app)
    t.notMatch(statements[0], /returning/i, 'a parent no route follows is written as is')
    t.same(told(client, 'all'), [['UPDATED', row(1, 't1', 1, 'Z', 2)], ['UPDATED', row(2, 't2', 1, 'Z', null)]])
    t.same(told(client, 'A'), [['DELETED', { id: 1 }], ['DELETED', { id: 2 }]], 'they leave the code = A filter')

    // an update of a column no foreign key references, and a write that changed no row: nothing to re-check
    const before = checks()
    await db(projects).where({ id: 2 }).update({ name: 'beta 2' })
    await db(projects).where({ id: 2 }).increment('version', 1)
    await db(projects).insert({ id: 2, code: 'B', name: 'ignored' }).onConflict('id').ignore()
    await db(projects).where({ id: 99 }).del()
    await db(projects).where({ id: 99 }).update({ code: 'Q' })
    await client.flush(app)
    t.equal(checks(), before, 'no view was read')

    // several writes of a transaction: the columns they set add up (code is one of them)
    await db.transaction(async (trx) => {
      await trx(projects).where({ id: 2 }).update({ name: 'beta 4', code: 'X' })
      t.same(await trx(projects).where({ id: 2 }).update({ code: 'C' }).returning('id'), [{ id: 2 }], 'the caller gets what it asked for')
    })
    await client.flush(app)
    t.same(told(client, 'all').slice(2), [['UPDATED', row(3, 't3', 2, 'C', 1)]])
    // an upsert may update the row it conflicts with
    await db(projects).insert({ id: 2, code: 'B', name: 'beta' }).onConflict('id').merge()
    await client.flush(app)
    t.same(told(client, 'all').slice(3), [['UPDATED', row(3, 't3', 2, 'B', 1)]])

    // a rolled-back delete changes nothing
    await t.rejects(db.transaction(async (trx) => {
      await trx(projects).where({ id: 2 }).del()
      throw new Error('changed my mind')
    }))
    await client.flush(app)
    t.equal(told(client, 'all').length, 4)

    // ON DELETE CASCADE (t3 goes with project 2) and ON DELETE SET NULL (t1 loses its reviewer)
    await db.transaction(async (trx) => { await trx(projects).where({ id: 2 }).del() })
    await client.flush(app)
    t.same(told(client, 'all').slice(4), [['UPDATED', row(1, 't1', 1, 'Z', null)], ['DELETED', { id: 3 }]])
    t.same(told(client, 'reviewed'), [
      ['UPDATED', row(1, 't1', 1, 'Z', 2)], ['UPDATED', row(3, 't3', 2, 'C', 1)], ['UPDATED', row(3, 't3', 2, 'B', 1)],
      ['DELETED', { id: 1 }], ['DELETED', { id: 3 }]
    ], 'the code changes, then both leave')

    await db(projects).where({ id: 1 }).del()
    await client.flush(app)
    t.same(told(client, 'all').slice(6), [['DELETED', { id: 1 }], ['DELETED', { id: 2 }]], 'deleting a project empties its tasks from live lists')
    t.same(await db(tasks).count({ n: '*' }), [{ n: dialect === 'sqlite' ? 0 : '0' }])
  })

  t.test(`${dialect}: chains of foreign keys, and a table that references itself`, async (t) => {
    const { app, db, tables: { projects, comments }, connect } = await appFixture(t, {
      knex: () => connectWithForeignKeys(dialect),
      tables: async (db, name) => {
        const projects = name('chain_p')
        const tasks = name('chain_t')
        const comments = name('chain_c')
        await db.schema.createTable(projects, (table) => { table.increments('id').primary() })
        await db.schema.createTable(tasks, (table) => {
          table.increments('id').primary()
          table.integer('project_id').references('id').inTable(projects).onDelete('CASCADE')
        })
        await db.schema.createTable(comments, (table) => {
          table.increments('id').primary()
          table.string('title').notNullable()
          table.integer('task_id').references('id').inTable(tasks).onDelete('CASCADE')
          table.integer('reply_to').nullable().references('id').inTable(comments).onDelete('CASCADE')
        })
        await db(projects).insert([{ id: 1 }, { id: 2 }])
        await db(tasks).insert([{ project_id: 1 }, { project_id: 2 }])
        await db(comments).insert([{ title: 'c1', task_id: 1 }, { title: 'c2', task_id: 2 }, { title: 'c3', task_id: 2, reply_to: 2 }, { title: 'c4', task_id: 2, reply_to: 3 }])
        return { projects, comments }
      },
      routes: (app, db, { comments }) => {
        app.get('/comments', { config: { realtime: { model: comments, queryset: () => db(comments).orderBy('id') } } }, async (request) => await app.realtime.list(request))
      }
    })
    const client = await connect()
    await client.subscribe({ id: 'c', model: comments, action: 'list' })

    // RETURNING reports c2 only; its replies (and theirs) go with it
    await db(comments).where({ id: 2 }).del()
    await client.flush(app)
    t.same(told(client, 'c'), [['DELETED', { id: 2 }], ['DELETED', { id: 3 }], ['DELETED', { id: 4 }]])

    // project → task → comment: two levels up
    await db.transaction(async (trx) => {
      await trx(projects).where({ id: 1 }).del()
      await trx(projects).where({ id: 2 }).del()
    })
    await client.flush(app)
    t.same(told(client, 'c').slice(3), [['DELETED', { id: 1 }]])
  })
}

t.test('sqlite: composite keys, implicit references and names in any case', async (t) => {
  const { app, db, tables: { pairs, parents, children }, connect } = await appFixture(t, {
    knex: () => connectWithForeignKeys('sqlite'),
    tables: async (db, name) => {
      const pairs = name('Pairs')
      const parents = name('parents')
      const children = name('children')
      await db.raw(`create table ${pairs} (a integer, b integer, primary key (a, b))`)
      await db.raw(`create table ${parents} (id integer primary key)`)
      await db.raw(`create table ${children} (id integer primary key, title text not null, a integer, b integer,
        parent integer references ${parents.toUpperCase()} on delete cascade,
        plain integer references ${parents} (id),
        foreign key (a, b) references ${pairs} (a, b) on delete cascade on update cascade)`)
      await db(pairs).insert([{ a: 1, b: 1 }, { a: 1, b: 2 }])
      await db(parents).insert([{ id: 1 }, { id: 2 }])
      await db(children).insert([{ title: 'c1', a: 1, b: 1, parent: 1, plain: 2 }, { title: 'c2', a: 1, b: 2, parent: 2, plain: 2 }])
      return { pairs, parents, children }
    },
    routes: (app, db, { children }) => {
      app.get('/children', { config: { realtime: { model: children, queryset: () => db(children).select('id', 'title', 'a', 'b').orderBy('id') } } }, async (request) => await app.realtime.list(request))
    }
  })
  const client = await connect()
  await client.subscribe({ id: 'c', model: children, action: 'list' })

  await db(pairs.toLowerCase()).where({ a: 1, b: 2 }).update({ b: 3 }) // ON UPDATE CASCADE over both columns
  await client.flush(app)
  t.same(told(client, 'c'), [['UPDATED', { id: 2, title: 'c2', a: 1, b: 3 }]])
  await db(parents).where({ id: 1 }).del() // `references parents` names its primary key
  await client.flush(app)
  t.same(told(client, 'c').slice(1), [['DELETED', { id: 1 }]])
})

t.test('foreign keys that cannot be read are reported; startup goes on', async (t) => {
  const logs: LogLine[] = []
  const quiet = (): void => {}
  await appFixture(t, {
    knex: () => knex({
      client: 'pg',
      connection: 'postgres://postgres@127.0.0.1:1/none', // nothing listens there
      pool: { min: 0, max: 1 },
      acquireConnectionTimeout: 2000,
      log: { warn: quiet, error: quiet, debug: quiet, deprecate: quiet }
    }),
    logs,
    routes: (app) => { app.get('/things', { config: { realtime: { model: 'things' } } }, async () => []) }
  })
  t.match(logs, [{ level: 50, msg: /reading foreign keys failed; rows that ON DELETE \/ ON UPDATE actions change will not be broadcast until a restart/ }])
})
