/**
 * Every error a subscription can earn (protocol.md), each with the status REST
 * would have given and a message a developer can act on; and the limits that
 * close a socket only when a client goes far past them.
 */
import { once } from 'node:events'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Knex } from 'knex'
import t from 'tap'
import { WebSocket } from 'ws'
import restLive, { errors, type RestLiveOptions } from '../lib/index.js'
import { TaskSchema } from './helpers/app.js'
import { tasksFixture } from './helpers/fixture.js'
import { createTasksTable, sqlite, uniqueName } from './helpers/db.js'
import { TestClient } from './helpers/ws-client.js'
import { eventually } from './helpers/eventually.js'

/** What these helpers need of a tap test: somewhere to hang cleanup. */
interface Teardown { teardown: (fn: () => unknown) => void }

interface RoutesApp {
  app: FastifyInstance
  db: Knex
  /** Followed by /tasks, /tasks/open (two list routes) and /tasks/:id. */
  tasks: string
  /** Followed by /owners/:owner_id/items and /owners/:owner_id/items/:id. */
  items: string
  /** Followed by /guarded (401 without credentials, 403 for anyone but user 1) and /gated/:id. */
  guarded: string
  /** Holds subscriptions to /gated/:id in the route's preHandler until opened. */
  gate: Gate
}

class Gate {
  #open!: () => void
  #reached!: () => void
  readonly opened = new Promise<void>((resolve) => { this.#open = resolve })
  /** Resolves once a request waits at the gate. */
  readonly reached = new Promise<void>((resolve) => { this.#reached = resolve })
  async pass (): Promise<void> {
    this.#reached()
    await this.opened
  }

  open (): void { this.#open() }
}

function userOf (request: FastifyRequest): number | undefined {
  const match = /^Bearer (\d+)$/.exec(request.headers.authorization ?? '')
  return match ? Number(match[1]) : undefined
}

/** An app with more routes than the tasks app: an ambiguous model, path parameters, guarded and plain routes. */
async function buildRoutesApp (t: Teardown, plugin: Partial<RestLiveOptions> = {}): Promise<RoutesApp> {
  const db = sqlite()
  const tasks = uniqueName('tasks')
  const items = uniqueName('items')
  const guarded = uniqueName('guarded')
  for (const table of [tasks, items, guarded]) await createTasksTable(db, table)
  const app = Fastify({ logger: false })
  t.teardown(async () => { await app.close(); await db.destroy() })
  await app.register(restLive, { knex: db, ...plugin })

  const list = { 200: { type: 'array', items: TaskSchema } } as const
  app.get('/tasks', {
    config: { realtime: { model: tasks, queryset: () => db(tasks).orderBy('id') } },
    schema: { response: list },
    handler: async (request) => await app.realtime.list(request)
  })
  app.get('/tasks/open', {
    config: { realtime: { model: tasks, queryset: () => db(tasks).where('done', false).orderBy('id') } },
    schema: { response: list },
    handler: async (request) => await app.realtime.list(request)
  })
  app.get('/tasks/:id', {
    config: { realtime: { model: tasks, queryset: () => db(tasks) } },
    schema: { params: { type: 'object', properties: { id: { type: 'integer' } } }, response: { 200: TaskSchema } },
    handler: async (request) => await app.realtime.retrieve(request)
  })
  const ownerParams = { owner_id: { type: 'integer' } } as const
  const byOwner = (request: FastifyRequest): Knex.QueryBuilder =>
    db(items).where(`${items}.owner_id`, (request.params as { owner_id: number }).owner_id).orderBy(`${items}.id`)
  app.get('/owners/:owner_id/items', {
    config: { realtime: { model: items, queryset: byOwner } },
    schema: { params: { type: 'object', properties: ownerParams }, response: list },
    handler: async (request) => await app.realtime.list(request)
  })
  app.get('/owners/:owner_id/items/:id', {
    config: { realtime: { model: items, queryset: byOwner } },
    schema: { params: { type: 'object', properties: { ...ownerParams, id: { type: 'integer' } } }, response: { 200: TaskSchema } },
    handler: async (request) => await app.realtime.retrieve(request)
  })
  app.get('/guarded', {
    config: { realtime: { model: guarded, queryset: () => db(guarded) } },
    schema: { response: list },
    onRequest: async (request) => {
      if (userOf(request) === undefined) throw Object.assign(new Error('log in first'), { statusCode: 401 })
    },
    preHandler: async (request, reply) => {
      if (userOf(request) !== 1) return await (reply as FastifyReply).code(403).send({ statusCode: 403, error: 'Forbidden', message: 'only user 1 may see this' })
    },
    handler: async (request) => await app.realtime.list(request)
  })
  const gate = new Gate()
  app.get('/gated/:id', {
    config: { realtime: { model: guarded, queryset: () => db(guarded) } },
    preHandler: async () => { await gate.pass() },
    handler: async (request) => await app.realtime.retrieve(request)
  })
  const throwing = (thrown: unknown) => ({
    config: { realtime: { model: guarded, queryset: () => { throw thrown } } },
    handler: async () => ({})
  })
  app.get('/broken/:id', throwing(new Error('database exploded')))
  app.get('/thrown/:id', throwing('a string'))
  app.get('/text-refusal/:id', {
    config: { realtime: { model: guarded, queryset: () => db(guarded) } },
    preHandler: async (_request, reply) => await (reply as FastifyReply).code(403).type('text/plain').send('go away'),
    handler: async () => ({})
  })
  app.get('/text-missing/:id', {
    config: { realtime: { model: guarded, queryset: () => db(guarded) } },
    preHandler: async (_request, reply) => await (reply as FastifyReply).code(404).type('text/plain').send('gone'),
    handler: async () => ({})
  })
  app.get('/plain', async () => ({ hello: 'world' }))
  await app.ready()
  return { app, db, tasks, items, guarded, gate }
}

async function tasksApp (t: Teardown, plugin: Partial<RestLiveOptions> = {}): Promise<{ app: FastifyInstance, db: Knex, table: string }> {
  return await tasksFixture(t, { plugin })
}

t.test('400: params that fail the route schemas', async (t) => {
  const { app, db, table } = await tasksApp(t)
  await db(table).insert({ title: 'a', owner_id: 1 })
  const client = await TestClient.connect(app, { authorization: 'Bearer 1' })
  t.teardown(() => { client.close() })

  const query = await client.subscribe({ id: 1, model: table, action: 'list', query_params: { done: 'maybe' } })
  t.match(query, { type: 'error', id: 1, code: 400, message: /querystring\/done must be boolean/ })
  const lookup = await client.subscribe({ id: 3, model: table, action: 'retrieve', lookup_by: 'abc' })
  t.match(lookup, { type: 'error', id: 3, code: 400, message: /params\/id must be integer/ })
  const ok = await client.subscribe({ id: 4, model: table, action: 'list', query_params: { done: false }, snapshot: true })
  t.same(ok, { type: 'subscribed', id: 4, data: [{ id: 1, title: 'a', owner_id: 1, done: false }] }, 'valid params subscribe')
  t.equal(app.realtime.stats().subscriptions, 1, 'failed subscriptions leave nothing behind')
})

t.test('400: model with several list routes names the paths to use', async (t) => {
  const { app, db, tasks } = await buildRoutesApp(t)
  await db(tasks).insert([{ title: 'open', owner_id: 1, done: false }, { title: 'closed', owner_id: 1, done: true }])
  const client = await TestClient.connect(app)
  t.teardown(() => { client.close() })
  const error = await client.subscribe({ id: 'amb', model: tasks, action: 'list' })
  t.match(error, { type: 'error', id: 'amb', code: 400 })
  t.match(error.message, /several list routes/)
  t.match(error.message, '/tasks, /tasks/open', 'names both paths')
  t.match(error.message, /subscribe with "path"/)
  const byPath = await client.subscribe({ id: 'open', path: '/tasks/open', snapshot: true })
  t.same(byPath, { type: 'subscribed', id: 'open', data: [{ id: 1, title: 'open', owner_id: 1, done: false }] }, 'the path the message names works')
  const retrieve = await client.subscribe({ id: 'one', model: tasks, action: 'retrieve', lookup_by: 2, snapshot: true })
  t.match(retrieve, { type: 'subscribed', id: 'one', data: { id: 2, title: 'closed' } }, 'the single retrieve route is not ambiguous')
})

t.test('401: no credentials', async (t) => {
  t.test('the route hook refuses', async (t) => {
    const { app } = await buildRoutesApp(t)
    const client = await TestClient.connect(app)
    t.teardown(() => { client.close() })
    const error = await client.subscribe({ id: 1, path: '/guarded' })
    t.same(error, { type: 'error', id: 1, code: 401, message: 'log in first' })
    t.equal(client.closed, undefined, 'the socket stays open')
  })
  t.test('the queryset refuses', async (t) => {
    const { app, table } = await tasksApp(t)
    const client = await TestClient.connect(app)
    t.teardown(() => { client.close() })
    const error = await client.subscribe({ id: 1, model: table, action: 'list' })
    t.same(error, { type: 'error', id: 1, code: 401, message: 'authentication required' })
    t.equal(app.realtime.stats().subscriptions, 0)
  })
})

t.test('403: the route preHandler replies 403', async (t) => {
  const { app, db, guarded } = await buildRoutesApp(t)
  await db(guarded).insert({ title: 'g', owner_id: 1 })
  const other = await TestClient.connect(app, { authorization: 'Bearer 2' })
  const owner = await TestClient.connect(app, { authorization: 'Bearer 1' })
  t.teardown(() => { other.close(); owner.close() })
  const error = await other.subscribe({ id: 1, model: guarded, action: 'list' })
  t.same(error, { type: 'error', id: 1, code: 403, message: 'only user 1 may see this' })
  const ok = await owner.subscribe({ id: 1, model: guarded, action: 'list', snapshot: true })
  t.match(ok, { type: 'subscribed', id: 1, data: [{ title: 'g' }] }, 'the same route lets user 1 in')
})

t.test('404s', async (t) => {
  const { app, db, tasks } = await buildRoutesApp(t)
  await db(tasks).insert({ title: 'a', owner_id: 1 })
  const client = await TestClient.connect(app)
  t.teardown(() => { client.close() })

  const model = await client.subscribe({ id: 1, model: 'nope', action: 'list' })
  t.match(model, { type: 'error', id: 1, code: 404, message: /no realtime route follows model 'nope'/ })
  t.match(model.message, tasks, 'lists the known models')
  const noKind = await client.subscribe({ id: 2, model: uniqueName('x'), action: 'list' })
  t.match(noKind, { code: 404 })
  const nothing = await client.subscribe({ id: 3, path: '/nothing/here' })
  t.same(nothing, { type: 'error', id: 3, code: 404, message: 'no realtime route matches /nothing/here' })
  const plain = await client.subscribe({ id: 4, path: '/plain' })
  t.same(plain, { type: 'error', id: 4, code: 404, message: 'no realtime route matches /plain' })
  const missing = await client.subscribe({ id: 5, model: tasks, action: 'retrieve', lookup_by: 999 })
  t.match(missing, { type: 'error', id: 5, code: 404, message: /No .* instance with id 999/ })
  const unsubscribe = await client.ask({ type: 'unsubscribe', id: 'ghost' })
  t.same(unsubscribe, { type: 'error', id: 'ghost', code: 404, message: 'no subscription with id "ghost" on this socket' })
  // its own error (not a missing route), with a stable code
  const noSubscription = new errors.NoSubscriptionError('"ghost"')
  t.match(noSubscription, { code: 'FST_REST_LIVE_NO_SUBSCRIPTION', statusCode: 404, message: unsubscribe.message })
  t.equal(app.realtime.stats().subscriptions, 0)
})

t.test('404: a model with no route of the asked kind', async (t) => {
  const db = sqlite()
  const table = uniqueName('only_list')
  await createTasksTable(db, table)
  const app = Fastify()
  t.teardown(async () => { await app.close(); await db.destroy() })
  await app.register(restLive, { knex: db })
  app.get('/only', { config: { realtime: { model: table, queryset: () => db(table) } } }, async (request) => await app.realtime.list(request))
  await app.ready()
  const client = await TestClient.connect(app)
  t.teardown(() => { client.close() })
  const error = await client.subscribe({ id: 1, model: table, action: 'retrieve', lookup_by: 1 })
  t.match(error, { type: 'error', id: 1, code: 404, message: `model '${table}' has no realtime retrieve route (its routes: /only)` })
})

t.test('500: a queryset that throws', async (t) => {
  const { app } = await buildRoutesApp(t)
  const client = await TestClient.connect(app)
  t.teardown(() => { client.close() })
  t.same(await client.subscribe({ id: 1, path: '/broken/1' }), { type: 'error', id: 1, code: 500, message: 'internal error' }, 'details stay on the server')
  t.same(await client.subscribe({ id: 2, path: '/thrown/1' }), { type: 'error', id: 2, code: 500, message: 'internal error' }, 'even for a thrown non-Error')
  t.equal(client.closed, undefined)
  t.match(await client.ask({ type: 'unsubscribe', id: 1 }), { type: 'error', code: 404 }, 'and the failed subscription is gone')
})

t.test('refusals without a JSON message still say what happened', async (t) => {
  const { app } = await buildRoutesApp(t)
  const client = await TestClient.connect(app)
  t.teardown(() => { client.close() })
  t.same(await client.subscribe({ id: 1, path: '/text-refusal/1' }), { type: 'error', id: 1, code: 403, message: 'GET /text-refusal/1 answered 403' })
  t.same(await client.subscribe({ id: 2, path: '/text-missing/1' }), { type: 'error', id: 2, code: 404, message: 'no realtime route matches /text-missing/1' })
})

t.test('409: duplicate subscription id while the first is active', async (t) => {
  const { app, table } = await tasksApp(t)
  const client = await TestClient.connect(app, { authorization: 'Bearer 1' })
  t.teardown(() => { client.close() })
  t.match(await client.subscribe({ id: 'x', model: table, action: 'list' }), { type: 'subscribed', id: 'x' })
  const dup = await client.subscribe({ id: 'x', model: table, action: 'retrieve', lookup_by: 1 })
  t.match(dup, { type: 'error', id: 'x', code: 409, message: /already open on this socket/ })
  t.match(await client.ask({ type: 'unsubscribe', id: 'x' }), { type: 'unsubscribed', id: 'x' })
  t.match(await client.subscribe({ id: 'x', model: table, action: 'list' }), { type: 'subscribed', id: 'x' }, 'the id is free again after unsubscribe')
  const pendingDup = client.next((f) => f.type === 'error' && f.id === 7)
  client.send({ type: 'subscribe', id: 7, model: table, action: 'list' })
  client.send({ type: 'subscribe', id: 7, model: table, action: 'list' })
  t.match(await pendingDup, { code: 409 }, 'an id still being subscribed counts too')
  t.match(await client.next((f) => f.type === 'subscribed' && f.id === 7), { id: 7 })
})

t.test('413 and 1009: frames over maxPayload', async (t) => {
  const { app, table } = await tasksApp(t, { maxPayload: 1024 })
  const client = await TestClient.connect(app, { authorization: 'Bearer 1' })
  t.teardown(() => { client.close() })
  const big = { type: 'subscribe', id: 'big', model: table, action: 'list', view_kwargs: { pad: 'x'.repeat(2000) } }
  const tooLarge = client.next((f) => f.type === 'error')
  client.send(big)
  const error = await tooLarge
  t.equal(error.code, 413)
  t.match(error.message, /frame of \d+ bytes exceeds maxPayload \(1024 bytes\)/)
  t.equal(client.closed, undefined, 'the socket stays open')
  t.match(await client.subscribe({ id: 'small', model: table, action: 'list' }), { type: 'subscribed' }, 'and still works')

  const closed = once(client.socket, 'close')
  client.send({ ...big, view_kwargs: { pad: 'x'.repeat(5000) } })
  const [code] = await closed as [number, Buffer]
  t.equal(code, 1009, 'a frame past the hard limit (4 × maxPayload) closes with 1009')
})

t.test('429: too many subscriptions', async (t) => {
  const { app, table } = await tasksApp(t, { maxSubscriptions: 2 })
  const client = await TestClient.connect(app, { authorization: 'Bearer 1' })
  t.teardown(() => { client.close() })
  t.match(await client.subscribe({ id: 1, model: table, action: 'list' }), { type: 'subscribed' })
  t.match(await client.subscribe({ id: 2, model: table, action: 'list', query_params: { done: true } }), { type: 'subscribed' })
  const third = await client.subscribe({ id: 3, model: table, action: 'list' })
  t.same(third, { type: 'error', id: 3, code: 429, message: 'this socket already has 2 subscriptions (maxSubscriptions); unsubscribe first' })
  await client.ask({ type: 'unsubscribe', id: 1 })
  t.match(await client.subscribe({ id: 3, model: table, action: 'list' }), { type: 'subscribed' }, 'room again after an unsubscribe')
  const other = await TestClient.connect(app, { authorization: 'Bearer 1' })
  t.teardown(() => { other.close() })
  t.match(await other.subscribe({ id: 1, model: table, action: 'list' }), { type: 'subscribed' }, 'the limit is per socket')
})

t.test('429 and 1008: too many frames', async (t) => {
  const { app } = await tasksApp(t, { maxFramesPerSecond: 5 })
  // over a real socket: app.injectWS's in-memory stream never finishes a close the server starts
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  const socket = new WebSocket(`${address.replace(/^http/, 'ws')}/ws/subscribe`, { headers: { authorization: 'Bearer 1' } })
  await once(socket, 'open')
  const client = new TestClient(socket)
  t.teardown(() => { client.close() })
  for (let i = 0; i < 6; i++) client.send({ type: 'unsubscribe', id: i })
  const limited = await client.next((f) => f.code === 429)
  t.same(limited, { type: 'error', id: null, code: 429, message: 'more than 5 frames per second; slow down' })
  t.equal(client.closed, undefined, 'a few frames over the limit are answered, not punished')

  const closed = once(client.socket, 'close')
  for (let i = 0; i < 50; i++) client.send({ type: 'unsubscribe', id: i })
  const [code, reason] = await closed as [number, Buffer]
  t.equal(code, 1008, 'far past the limit the socket is closed with 1008')
  t.equal(String(reason), 'frame rate limit exceeded')
})

t.test('subscribe by path with a query string', async (t) => {
  const { app, db, table } = await tasksApp(t)
  await db(table).insert([{ title: 'todo', owner_id: 1, done: false }, { title: 'done', owner_id: 1, done: true }])
  const client = await TestClient.connect(app, { authorization: 'Bearer 1' })
  t.teardown(() => { client.close() })
  const sub = await client.subscribe({ id: 'p', path: '/tasks?done=true', snapshot: true })
  t.same(sub, { type: 'subscribed', id: 'p', data: [{ id: 2, title: 'done', owner_id: 1, done: true }] })
  await client.request('POST', '/tasks', { title: 'still todo' })
  await client.request('POST', '/tasks', { title: 'finished', done: true })
  await client.flush(app)
  t.same(client.broadcasts('p').map((f) => [f.action, (f.instance as { title: string }).title]), [['CREATED', 'finished']], 'only rows the query string selects')
})

t.test('view_kwargs fill the other path parameters', async (t) => {
  const { app, db, items, guarded } = await buildRoutesApp(t)
  await db(items).insert([{ title: 'mine', owner_id: 2, done: false }, { title: 'theirs', owner_id: 3, done: false }])
  const client = await TestClient.connect(app)
  t.teardown(() => { client.close() })
  const list = await client.subscribe({ id: 'l', model: items, action: 'list', view_kwargs: { owner_id: 2 }, snapshot: true })
  t.same(list, { type: 'subscribed', id: 'l', data: [{ id: 1, title: 'mine', owner_id: 2, done: false }] })
  const one = await client.subscribe({ id: 'r', model: items, action: 'retrieve', lookup_by: 2, view_kwargs: { owner_id: 3 }, snapshot: true })
  t.match(one, { type: 'subscribed', id: 'r', data: { id: 2, title: 'theirs' } })
  const elsewhere = await client.subscribe({ id: 'x', model: items, action: 'retrieve', lookup_by: 2, view_kwargs: { owner_id: 2 } })
  t.match(elsewhere, { type: 'error', id: 'x', code: 404 }, 'the kwargs narrow the queryset')

  await db(items).insert([{ title: 'mine too', owner_id: 2, done: false }, { title: 'not mine', owner_id: 3, done: false }])
  await client.flush(app)
  t.same(client.broadcasts('l').map((f) => (f.instance as { title: string }).title), ['mine too'])

  const unknown = await client.subscribe({ id: 'u', model: items, action: 'list', view_kwargs: { owner_id: 2, colour: 'red' } })
  t.match(unknown, { type: 'error', id: 'u', code: 400 })
  t.match(unknown.message, /view_kwargs has "colour", which route \/owners\/:owner_id\/items does not take \(its parameters: owner_id\)/)
  const none = await client.subscribe({ id: 'n', model: guarded, action: 'list', view_kwargs: { owner_id: 2 } })
  t.match(none, { code: 400, message: /its parameters: none/ })
  const lacking = await client.subscribe({ id: 'm', model: items, action: 'list' })
  t.match(lacking, { type: 'error', id: 'm', code: 400, message: 'route /owners/:owner_id/items needs view_kwargs.owner_id' })
  const badKwarg = await client.subscribe({ id: 'b', model: items, action: 'list', view_kwargs: { owner_id: 'bob' } })
  t.match(badKwarg, { code: 400, message: /params\/owner_id must be integer/ })
})

t.test('unsubscribe answers unsubscribed and stops broadcasts', async (t) => {
  const { app, db, table } = await tasksApp(t)
  const client = await TestClient.connect(app, { authorization: 'Bearer 1' })
  t.teardown(() => { client.close() })
  await client.subscribe({ id: 'keep', model: table, action: 'list' })
  await client.subscribe({ id: 'drop', model: table, action: 'list' })
  t.equal(app.realtime.stats().subscriptions, 2)
  await db(table).insert({ title: 'one', owner_id: 1 })
  await client.flush(app)
  t.equal(client.broadcasts('drop').length, 1)
  t.same(await client.ask({ type: 'unsubscribe', id: 'drop' }), { type: 'unsubscribed', id: 'drop' })
  t.equal(app.realtime.stats().subscriptions, 1)
  await db(table).insert({ title: 'two', owner_id: 1 })
  await client.flush(app)
  t.equal(client.broadcasts('drop').length, 1, 'no broadcast after unsubscribed')
  t.equal(client.broadcasts('keep').length, 2, 'the other subscription goes on')
  t.match(await client.ask({ type: 'unsubscribe', id: 'drop' }), { type: 'error', code: 404 }, 'a second unsubscribe is a 404')
})

t.test('unsubscribe or close while a subscription is still being made', async (t) => {
  const { app, db, table } = await tasksApp(t)
  await db(table).insert({ title: 'a', owner_id: 1 })

  t.test('unsubscribe before subscribed', async (t) => {
    const client = await TestClient.connect(app, { authorization: 'Bearer 1' })
    t.teardown(() => { client.close() })
    const unsubscribed = client.next((f) => f.type === 'unsubscribed')
    client.send({ type: 'subscribe', id: 1, model: table, action: 'list' })
    client.send({ type: 'unsubscribe', id: 1 })
    t.same(await unsubscribed, { type: 'unsubscribed', id: 1 })
    await client.flush(app)
    t.equal(app.realtime.stats().subscriptions, 0, 'the subscription is dropped once made')
    await db(table).insert({ title: 'b', owner_id: 1 })
    await client.flush(app)
    t.same(client.broadcasts(1), [], 'and gets no broadcast')
  })

  t.test('unsubscribe before a subscription fails', async (t) => {
    const client = await TestClient.connect(app, { authorization: 'Bearer 1' })
    t.teardown(() => { client.close() })
    const unsubscribed = client.next((f) => f.type === 'unsubscribed')
    client.send({ type: 'subscribe', id: 2, model: table, action: 'retrieve', lookup_by: 999 })
    client.send({ type: 'unsubscribe', id: 2 })
    t.same(await unsubscribed, { type: 'unsubscribed', id: 2 })
    t.match(client.frames.find((f) => f.type === 'error'), { id: 2, code: 404 })
  })

  t.test('socket closed before subscribed', async (t) => {
    const { app: gated, db: gatedDb, guarded, gate } = await buildRoutesApp(t)
    await gatedDb(guarded).insert({ title: 'g', owner_id: 1 })
    const client = await TestClient.connect(gated)
    client.send({ type: 'subscribe', id: 3, path: '/gated/1' })
    client.send({ type: 'subscribe', id: 4, path: '/gated/999' })
    await gate.reached
    t.equal(gated.realtime.stats().connections, 1)
    client.close()
    await eventually(() => gated.realtime.stats().connections === 0, 'the socket closing')
    gate.open()
    await gated.realtime.settled()
    const probe = await TestClient.connect(gated)
    t.teardown(() => { probe.close() })
    t.match(await probe.subscribe({ id: 5, path: '/gated/1' }), { type: 'subscribed' }, 'the route works once the gate is open')
    t.equal(gated.realtime.stats().subscriptions, 1, 'the closed socket left nothing subscribed')
    t.same(client.frames, [], 'and was sent nothing')
  })
})
