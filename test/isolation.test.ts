/**
 * Views are never shared across routes: an admin route and a user route that
 * read the same rows (identical queryset SQL) but serialize them differently
 * each send their own serialization, whichever subscribed first. Same for
 * routes without a queryset, for routes sharing one URL (told apart by a
 * constraint), and for channels-api subscriptions.
 */
import type { FastifyInstance, FastifyRequest, FastifyServerOptions } from 'fastify'
import type { Knex } from 'knex'
import t, { type Test } from 'tap'
import { refetchViewKey } from '../lib/subscriptions/view.js'
import type { RealtimeRoute } from '../lib/registry/route-registry.js'
import { TaskSchema } from './helpers/app.js'
import { postgresAvailable, type Dialect } from './helpers/db.js'
import { appFixture, task, tasksTable, told } from './helpers/fixture.js'
import type { TestClient } from './helpers/ws-client.js'

const AdminTask = {
  type: 'object',
  properties: { ...TaskSchema.properties, secret: { type: 'string' } },
  required: [...TaskSchema.required, 'secret']
} as const

type Layout =
  /** /admin/tasks and /tasks */
  | 'two urls'
  /** both at /tasks, told apart by a route constraint derived from the credentials */
  | 'one url'

interface Setup {
  dialect: Dialect
  /** false: routes without a queryset (the plugin re-runs them) */
  queryset: boolean
  layout: Layout
}

interface Env {
  app: FastifyInstance
  db: Knex
  table: string
  admin: TestClient
  user: TestClient
  adminList: string
  userList: string
  adminOne: (id: number) => string
  userOne: (id: number) => string
}

function roleOf (request: { headers: Record<string, unknown> }): string | undefined {
  const match = /^Bearer (admin|user)$/.exec(String(request.headers.authorization ?? ''))
  return match?.[1]
}

/** Routes on one table: the admin's schema names `secret`, the user's does not; both read the same rows. */
async function adminAndUser (t: Test, setup: Setup): Promise<Env> {
  // a route constraint derived from the credentials: two routes may then share a URL
  const role = {
    name: 'role',
    storage: () => {
      const handlers = new Map<string, unknown>()
      return { get: (value: string) => handlers.get(value) ?? null, set: (value: string, handler: unknown) => { handlers.set(value, handler) } }
    },
    validate: () => {},
    deriveConstraint: (request: { headers: Record<string, unknown> }) => roleOf(request) ?? 'none',
    mustMatchWhenDerived: false
  }
  const base = { admin: setup.layout === 'two urls' ? '/admin/tasks' : '/tasks', user: '/tasks' }
  const { app, db, tables: table, connect } = await appFixture(t, {
    dialect: setup.dialect,
    tables: tasksTable('isolation'),
    server: { routerOptions: { constraints: { role } } } as FastifyServerOptions,
    routes: (app, db, table) => {
      app.realtime.resource('tasks', { prefix: '/tasks' })
      // the same SQL for both routes: before the fix, that alone made them share a view
      const rows = (): Knex.QueryBuilder => db(table).orderBy(`${table}.id`)
      const one = (request: FastifyRequest): Knex.QueryBuilder => rows().where(`${table}.id`, (request.params as { id: number }).id).first()
      const adminOnly = async (request: FastifyRequest): Promise<void> => {
        if (roleOf(request) !== 'admin') throw Object.assign(new Error('admins only'), { statusCode: 403 })
      }
      const realtime = setup.queryset ? { model: table, queryset: rows } : { model: table }
      const params = { type: 'object', properties: { id: { type: 'integer' } }, required: ['id'] }
      const oneOr404 = async (request: FastifyRequest): Promise<unknown> => {
        const row: unknown = await one(request)
        if (row === undefined) throw Object.assign(new Error('not found'), { statusCode: 404 })
        return row
      }
      for (const role of ['admin', 'user'] as const) {
        const item = role === 'admin' ? AdminTask : TaskSchema
        const constraints = setup.layout === 'one url' ? { role } : {}
        app.get(base[role], {
          constraints,
          preHandler: role === 'admin' ? adminOnly : [],
          schema: { response: { 200: { type: 'array', items: item } } },
          config: { realtime }
        }, async () => await rows())
        app.get(`${base[role]}/:id`, {
          constraints,
          preHandler: role === 'admin' ? adminOnly : [],
          schema: { params, response: { 200: item } },
          config: { realtime }
        }, oneOr404)
      }
    }
  })
  const connectAs = async (role: string): Promise<TestClient> => await connect({ authorization: `Bearer ${role}` })
  return {
    app,
    db,
    table,
    admin: await connectAs('admin'),
    user: await connectAs('user'),
    adminList: base.admin,
    userList: base.user,
    adminOne: (id) => `${base.admin}/${id}`,
    userOne: (id) => `${base.user}/${id}`
  }
}

const texts = (client: TestClient): string => client.frames.map((frame) => client.raw(frame)).join('\n')
const adminTask = (id: number, title: string, secret = 'hunter2'): Record<string, unknown> => ({ ...task(id, title), secret })

async function scenario (t: Test, env: Env, adminFirst: boolean): Promise<void> {
  const { app, db, table, admin, user } = env
  await db(table).insert({ title: 'a', owner_id: 1 })
  const subscribeAdmin = async (): Promise<void> => {
    t.same((await admin.subscribe({ id: 'list', path: env.adminList, snapshot: true })).data, [adminTask(1, 'a')], "the admin's list snapshot has the secret")
    t.same((await admin.subscribe({ id: 'one', path: env.adminOne(1), snapshot: true })).data, adminTask(1, 'a'), "the admin's instance snapshot has the secret")
  }
  const subscribeUser = async (): Promise<void> => {
    t.same((await user.subscribe({ id: 'list', path: env.userList, snapshot: true })).data, [task(1, 'a')], "the user's list snapshot has no secret")
    t.same((await user.subscribe({ id: 'one', path: env.userOne(1), snapshot: true })).data, task(1, 'a'), "the user's instance snapshot has no secret")
  }
  if (adminFirst) {
    await subscribeAdmin()
    await subscribeUser()
  } else {
    await subscribeUser()
    await subscribeAdmin()
  }
  if (env.adminList !== env.userList) {
    t.match(await user.subscribe({ id: 'sneak', path: env.adminList }), { type: 'error', code: 403 }, "the admin route's own hooks still refuse the user")
  }

  const settle = async (): Promise<void> => {
    await admin.flush(app)
    await user.flush(app)
  }
  await db(table).insert({ title: 'b', owner_id: 2 })
  await settle()
  await db(table).where({ id: 1 }).update({ title: 'a!' })
  await settle()
  await db(table).where({ id: 1 }).update({ secret: 'swordfish' })
  await settle()
  await db(table).where({ id: 1 }).del()
  await settle()

  t.same(told(user, 'list'), [['CREATED', task(2, 'b', 2)], ['UPDATED', task(1, 'a!')], ['DELETED', { id: 1 }]],
    "the user's list: its own serialization; a secret-only change is not news")
  t.same(told(user, 'one'), [['UPDATED', task(1, 'a!')], ['DELETED', { id: 1 }]])
  t.same(told(admin, 'list'), [
    ['CREATED', { ...adminTask(2, 'b'), owner_id: 2 }], ['UPDATED', adminTask(1, 'a!')], ['UPDATED', adminTask(1, 'a!', 'swordfish')], ['DELETED', { id: 1 }]
  ], "the admin's list: with the secret")
  t.same(told(admin, 'one'), [['UPDATED', adminTask(1, 'a!')], ['UPDATED', adminTask(1, 'a!', 'swordfish')], ['DELETED', { id: 1 }]])
  t.notMatch(texts(user), /secret|hunter2|swordfish/, 'not one byte of the secret reached the user')
}

const withPostgres = await postgresAvailable()
if (!withPostgres) t.comment('PostgreSQL is not reachable: running the SQLite half only')

const setups: Setup[] = [
  { dialect: 'sqlite', queryset: true, layout: 'two urls' },
  ...(withPostgres ? [{ dialect: 'postgres', queryset: true, layout: 'two urls' } as const] : []),
  { dialect: 'sqlite', queryset: true, layout: 'one url' },
  { dialect: 'sqlite', queryset: false, layout: 'two urls' },
  { dialect: 'sqlite', queryset: false, layout: 'one url' }
]
for (const setup of setups) {
  for (const adminFirst of [true, false]) {
    const name = `${setup.dialect}, ${setup.queryset ? 'queryset' : 'refetch'} routes at ${setup.layout}, ${adminFirst ? 'admin' : 'user'} subscribes first`
    t.test(name, async (t) => {
      await scenario(t, await adminAndUser(t, setup), adminFirst)
    })
  }
}

t.test('a channels-api subscription gets its own route\'s serialization', async (t) => {
  const env = await adminAndUser(t, { dialect: 'sqlite', queryset: true, layout: 'two urls' })
  const { app, db, table, admin, user } = env
  await admin.subscribe({ id: 'list', path: env.adminList, snapshot: true })
  const answer = user.next((frame) => (frame as { stream?: string }).stream === 'tasks')
  user.send({ stream: 'tasks', payload: { action: 'subscribe', data: { action: 'create' }, request_id: 's' } })
  t.match(await answer, { payload: { action: 'subscribe', response_status: 200 } })
  await db(table).insert({ title: 'a', owner_id: 1 })
  await user.flush(app)
  const events = user.frames.filter((frame) => (frame as { payload?: { action?: string } }).payload?.action === 'create')
  t.same(events.map((frame) => frame.payload), [{ action: 'create', pk: 1, data: task(1, 'a'), model: table }])
  t.notMatch(texts(user), /secret|hunter2/)
})

t.test('one URL, different credentials: a refetch view per identity', async (t) => {
  const { app, db, tables: table, connect } = await appFixture(t, {
    tables: tasksTable('isolation'),
    routes: (app, db, table) => {
      // one route whose schema names the secret; the handler hands it to admins only
      app.get('/board', { schema: { response: { 200: { type: 'array', items: { ...AdminTask, required: TaskSchema.required } } } }, config: { realtime: { model: table } } },
        async (request) => (await db(table).orderBy('id')).map((row: Record<string, unknown>) => roleOf(request) === 'admin' ? row : { ...row, secret: undefined }))
    }
  })
  const admin = await connect({ authorization: 'Bearer admin' })
  const user = await connect({ authorization: 'Bearer user' })
  await db(table).insert({ title: 'a', owner_id: 1 })
  t.same((await admin.subscribe({ id: 1, path: '/board', snapshot: true })).data, [adminTask(1, 'a')])
  t.same((await user.subscribe({ id: 1, path: '/board', snapshot: true })).data, [task(1, 'a')])
  await db(table).insert({ title: 'b', owner_id: 1 })
  await admin.flush(app)
  await user.flush(app)
  t.same(told(admin, 1), [['CREATED', adminTask(2, 'b')]])
  t.same(told(user, 1), [['CREATED', task(2, 'b')]])
  t.notMatch(texts(user), /secret|hunter2/)
})

t.test("a refetch view's key is the route, the URL and the request's whole identity", async (t) => {
  const route = (id: number): RealtimeRoute => ({ id, url: '/x', model: 'x', kind: 'list', lookup: 'id', pk: 'id', params: [], queryset: undefined, response: undefined, serialize: undefined })
  const headers = { authorization: 'Bearer 1', 'x-tenant': 'a' }
  const key = refetchViewKey(route(1), '/x', { headers })
  t.equal(refetchViewKey(route(1), '/x', { headers: { 'x-tenant': 'a', authorization: 'Bearer 1' } }), key, 'header order does not matter')
  t.not(refetchViewKey(route(2), '/x', { headers }), key, 'another route')
  t.not(refetchViewKey(route(1), '/x?y=1', { headers }), key, 'another URL')
  t.not(refetchViewKey(route(1), '/x', { headers: { ...headers, 'x-tenant': 'b' } }), key, 'any header, not only credentials')
  t.not(refetchViewKey(route(1), '/x', { headers: { authorization: 'Bearer 1' } }), key, 'a header fewer')
  t.not(refetchViewKey(route(1), '/x', { headers, remoteAddress: '10.0.0.1' }), key, 'the remote address, when the request carries one')
  t.not(refetchViewKey(route(1), '/x', { headers, remoteAddress: '10.0.0.2' }), refetchViewKey(route(1), '/x', { headers, remoteAddress: '10.0.0.1' }))
})
