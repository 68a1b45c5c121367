/**
 * The plugin as an application meets it: option validation, route discovery,
 * @fastify/websocket wiring, the socket path, the Origin guard, graceful
 * shutdown, and the `app.realtime` decorations.
 */
import { once } from 'node:events'
import websocket from '@fastify/websocket'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Knex } from 'knex'
import t from 'tap'
import { WebSocket } from 'ws'
import restLive, { type RestLiveOptions } from '../lib/index.js'
import { TaskSchema, buildTasksApp } from './helpers/app.js'
import { createTasksTable, sqlite, uniqueName } from './helpers/db.js'
import { appFixture, tasksFixture, tasksTable } from './helpers/fixture.js'
import { TestClient } from './helpers/ws-client.js'
import { eventually } from './helpers/eventually.js'

interface Teardown { teardown: (fn: () => unknown) => void }

async function database (t: Teardown): Promise<{ db: Knex, table: string }> {
  const db = sqlite()
  const table = uniqueName('tasks')
  await createTasksTable(db, table)
  t.teardown(async () => { await db.destroy() })
  return { db, table }
}

/** A bare app, closed when the test ends. */
function bareApp (t: Teardown, options: FastifyServerOptions = {}): FastifyInstance {
  const app = Fastify(options)
  t.teardown(async () => { await app.close() })
  return app
}

/** The error registering the plugin with these options fails with. */
async function registrationError (t: Teardown, db: Knex, options: unknown): Promise<Error & { code?: string }> {
  const app = bareApp(t)
  try {
    await app.register(restLive, options as RestLiveOptions)
    await app.ready()
  } catch (err) {
    return err as Error & { code?: string }
  }
  throw new Error(`registering with ${String(options)} did not fail`)
}

/** The error declaring a route fails with (thrown at once, or at ready). */
async function routeError (app: FastifyInstance, declare: () => void): Promise<Error & { code?: string }> {
  try {
    declare()
    await app.ready()
  } catch (err) {
    return err as Error & { code?: string }
  }
  throw new Error('declaring the route did not fail')
}

t.test('options are validated, and errors name the option', async (t) => {
  const { db } = await database(t)
  const cases: Array<[string, unknown, RegExp]> = [
    ['no options', undefined, /option 'knex' must be a Knex instance, got nothing/],
    ['options not an object', 'postgres://db', /option object must be given: fastify-rest-live needs at least \{ knex \}/],
    ['no knex', { path: '/live' }, /option 'knex' must be a Knex instance, got nothing/],
    ['knex not a Knex instance (object)', { knex: { client: {} } }, /option 'knex' must be a Knex instance, got an object/],
    ['knex not a Knex instance (string)', { knex: 'sqlite://db' }, /option 'knex' must be a Knex instance, got "sqlite:\/\/db"/],
    ['knex null', { knex: null }, /option 'knex' must be a Knex instance, got null/],
    ['unknown option', { knex: db, maxPayLoad: 1024 }, /option 'maxPayLoad' is not a fastify-rest-live option \(known: knex, redis, path, .*maxPayload/],
    ['ill-typed maxPayload', { knex: db, maxPayload: 'big' }, /option 'maxPayload' expected integer, got "big"/],
    ['too small maxPayload', { knex: db, maxPayload: 10 }, /option 'maxPayload' expected integer to be greater or equal to 64, got a number/],
    ['path without slash', { knex: db, path: 'ws' }, /option 'path' /],
    ['maxSubscriptions zero', { knex: db, maxSubscriptions: 0 }, /option 'maxSubscriptions' /],
    ['allowedOrigins not strings', { knex: db, allowedOrigins: ['https://a.example', 3] }, /option 'allowedOrigins' /],
    ['allowedOrigins not an array', { knex: db, allowedOrigins: 'https://a.example' }, /option 'allowedOrigins' .*got "https:\/\/a.example"/],
    ['inspector not boolean', { knex: db, inspector: 'yes' }, /option 'inspector' expected boolean/],
    ['redis of the wrong type', { knex: db, redis: 6379 }, /option 'redis' .*got a number/],
    ['channelPrefix with a glob', { knex: db, channelPrefix: 'live*' }, /option 'channelPrefix' /],
    ['reauthorizeEvery too often', { knex: db, reauthorizeEvery: 10 }, /option 'reauthorizeEvery' expected integer to be greater or equal to 1000, got a number/],
    ['reauthorizeEvery past setTimeout', { knex: db, reauthorizeEvery: 2 ** 31 }, /option 'reauthorizeEvery' expected integer to be less or equal to 2147483647/],
    ['reauthorizeEvery not a number', { knex: db, reauthorizeEvery: '1m' }, /option 'reauthorizeEvery' expected integer, got "1m"/],
    ['maxCapturedRows negative', { knex: db, maxCapturedRows: -1 }, /option 'maxCapturedRows' expected integer to be greater or equal to 0, got a number/],
    ['maxCapturedRows not an integer', { knex: db, maxCapturedRows: 1.5 }, /option 'maxCapturedRows' expected integer, got a number/],
    ['expiresAt not a function', { knex: db, expiresAt: 3600 }, /option 'expiresAt' expected function, got a number/]
  ]
  for (const [name, options, message] of cases) {
    const err = await registrationError(t, db, options)
    t.equal(err.code, 'FST_REST_LIVE_INVALID_OPTION', `${name}: code`)
    t.match(err.message, message, `${name}: message`)
    t.type(err, TypeError)
  }
})

t.test("fastify's own plugin options are not ours to refuse", async (t) => {
  const { db, table } = await database(t)
  const app = bareApp(t)
  await app.register(restLive, { knex: db, prefix: '/api', logLevel: 'warn', path: '/live' } as RestLiveOptions)
  app.get('/tasks', { config: { realtime: { model: table, queryset: () => db(table) } } }, async (request) => await app.realtime.list(request))
  await app.ready()
  const client = await TestClient.connect(app, {}, '/live')
  t.teardown(() => { client.close() })
  t.match(await client.subscribe({ id: 1, model: table, action: 'list' }), { type: 'subscribed' })
})

t.test('route discovery', async (t) => {
  const { db, table } = await database(t)

  t.test('a non-GET realtime route fails, naming the route', async (t) => {
    const app = bareApp(t)
    await app.register(restLive, { knex: db })
    const err = await routeError(app, () => {
      app.post('/tasks', { config: { realtime: { model: table } } }, async () => ({}))
    })
    t.equal(err.code, 'FST_REST_LIVE_NOT_A_GET_ROUTE')
    t.match(err.message, 'route POST /tasks has config.realtime, but only GET routes can be realtime')
  })

  t.test('a GET+POST realtime route fails too', async (t) => {
    const app = bareApp(t)
    await app.register(restLive, { knex: db })
    const err = await routeError(app, () => {
      app.route({ method: ['GET', 'POST'], url: '/both', config: { realtime: { model: table } }, handler: async () => ({}) })
    })
    t.match(err.message, /route GET,POST \/both has config\.realtime/)
  })

  const invalid: Array<[string, unknown, RegExp]> = [
    ['no model', {}, /'model' must be the name of the table/],
    ['no model, a queryset of the request', { queryset: (request: unknown) => db(table).where('owner_id', (request as { id: number }).id) }, /'model' is needed when the queryset takes the request/],
    ['empty model', { model: '' }, /'model' must be the name of the table/],
    ['queryset not a function', { model: table, queryset: 'select * from tasks' }, /'queryset' must be a function/],
    ['unknown key', { model: table, querySet: () => db(table) }, /'querySet' is not a config\.realtime key \(known: model, queryset, lookup, pk, expiresAt\)/],
    ['empty lookup', { model: table, lookup: '' }, /'lookup' must be a non-empty string/],
    ['pk not a string', { model: table, pk: 1 }, /'pk' must be a non-empty string/],
    ['expiresAt not a function', { model: table, expiresAt: 3600 }, /'expiresAt' must be a function \(request\) => Date \| number \| undefined/],
    ['not an object', 'tasks', /expected an object like \{ model, queryset \}/],
    ['null', null, /expected an object like/]
  ]
  for (const [name, realtime, message] of invalid) {
    t.test(`invalid config.realtime: ${name}`, async (t) => {
      const app = bareApp(t)
      await app.register(restLive, { knex: db })
      const err = await routeError(app, () => {
        app.get('/broken/:id', { config: { realtime: realtime as never } }, async () => ({}))
      })
      t.equal(err.code, 'FST_REST_LIVE_INVALID_ROUTE_CONFIG')
      t.match(err.message, 'route /broken/:id has an invalid config.realtime')
      t.match(err.message, message)
    })
  }

  t.test('a response schema without the primary key fails: subscribers could not tell rows apart', async (t) => {
    const app = bareApp(t)
    await app.register(restLive, { knex: db })
    const err = await routeError(app, () => {
      app.get('/titles', {
        schema: { response: { 200: { type: 'array', items: { type: 'object', properties: { title: { type: 'string' } } } } } },
        config: { realtime: { model: table, queryset: () => db(table) } }
      }, async () => [])
    })
    t.equal(err.code, 'FST_REST_LIVE_INVALID_ROUTE_CONFIG')
    t.match(err.message, "route /titles has an invalid config.realtime: its response schema drops the primary key 'id'")
  })

  t.test('HEAD twins are skipped, lookup and pk options are honoured', async (t) => {
    const app = bareApp(t)
    await app.register(restLive, { knex: db })
    app.get('/tasks', {
      config: { realtime: { model: table, queryset: () => db(table).orderBy('id') } },
      schema: { response: { '2xx': { type: 'array', items: TaskSchema } } }
    }, async (request) => await app.realtime.list(request))
    app.route({
      method: ['GET', 'HEAD'],
      url: '/tasks/by-title/:title',
      config: { realtime: { model: table, lookup: 'title', pk: 'title', queryset: () => db(table) } },
      handler: async (request) => await app.realtime.retrieve(request)
    })
    await app.ready()
    await db(table).insert({ title: 'alpha', owner_id: 1 })
    t.equal((await app.inject({ method: 'HEAD', url: '/tasks' })).statusCode, 200, 'the HEAD twin still answers')
    const client = await TestClient.connect(app)
    t.teardown(() => { client.close() })
    const list = await client.subscribe({ id: 1, model: table, action: 'list', snapshot: true })
    t.same(list, { type: 'subscribed', id: 1, data: [{ id: 1, title: 'alpha', owner_id: 1, done: false }] }, 'one list route, not two; serialized by its 2xx schema')
    t.match(await client.subscribe({ id: 2, model: table, action: 'retrieve', lookup_by: 'alpha', snapshot: true }), { type: 'subscribed', data: { title: 'alpha', id: 1 } }, 'retrieve by a custom lookup')
    t.match(await app.inject('/tasks/by-title/beta').then((r) => r.json()), { statusCode: 404, message: 'No ' + table + ' instance with title beta' })
  })
})

t.test('a realtime route registered before the plugin is reported, and answers 404 to subscribers', async (t) => {
  const { db, table } = await database(t)
  const logs: Array<{ level: number, msg: string }> = []
  const app = bareApp(t, { logger: { level: 'info', stream: { write: (line: string) => { logs.push(JSON.parse(line) as { level: number, msg: string }) } } } })
  app.get('/early', { config: { realtime: { model: table, queryset: () => db(table) } } }, async () => [])
  await app.register(restLive, { knex: db })
  app.get('/late', { config: { realtime: { model: table, queryset: () => db(table) } } }, async (request) => await app.realtime.list(request))
  await app.ready()

  const client = await TestClient.connect(app)
  t.teardown(() => { client.close() })
  const error = await client.subscribe({ id: 1, path: '/early' })
  t.match(error, { type: 'error', id: 1, code: 404 })
  t.match(error.message, 'GET /early has config.realtime but was registered before the plugin')
  t.match(error.message, /register fastify-rest-live before your routes/)
  t.match(await client.subscribe({ id: 2, model: table, action: 'list' }), { type: 'subscribed' }, 'the model+action lookup finds the late route only')
  t.equal((await app.inject('/early')).statusCode, 200, 'the route itself still serves REST')
  await app.inject('/early')

  const reports = logs.filter((line) => line.level >= 50 && line.msg.includes('/early'))
  t.equal(reports.length, 1, 'logged once, as an error')
  t.match(reports[0]?.msg, /GET \/early has config\.realtime but was registered before the plugin/)
  t.notOk(logs.some((line) => line.level >= 50 && line.msg.includes('/late')), 'the late route is fine')
})

t.test('@fastify/websocket', async (t) => {
  const { db, table } = await database(t)

  t.test('registered by the plugin', async (t) => {
    const app = bareApp(t)
    t.notOk(app.hasDecorator('websocketServer'))
    await app.register(restLive, { knex: db, maxPayload: 1000 })
    app.get('/tasks', { config: { realtime: { model: table, queryset: () => db(table) } } }, async (request) => await app.realtime.list(request))
    await app.ready()
    t.ok(app.hasDecorator('websocketServer'))
    t.equal(app.websocketServer.options.maxPayload, 4000, 'with a hard frame limit of 4 × maxPayload')
    const client = await TestClient.connect(app)
    t.teardown(() => { client.close() })
    t.match(await client.subscribe({ id: 1, model: table, action: 'list' }), { type: 'subscribed' })
  })

  t.test('already registered by the app', async (t) => {
    const app = bareApp(t)
    await app.register(websocket, { options: { maxPayload: 2048 } })
    await app.register(restLive, { knex: db })
    app.get('/tasks', { config: { realtime: { model: table, queryset: () => db(table) } } }, async (request) => await app.realtime.list(request))
    app.get('/own-ws', { websocket: true }, (socket) => { socket.send('mine') })
    await app.ready()
    t.equal(app.websocketServer.options.maxPayload, 2048, "the app's own settings are kept")
    const client = await TestClient.connect(app)
    t.teardown(() => { client.close() })
    t.match(await client.subscribe({ id: 1, model: table, action: 'list' }), { type: 'subscribed' })
    let received: Promise<unknown[]> | undefined
    const own = await app.injectWS('/own-ws', {}, { onInit: (socket) => { received = once(socket, 'message') } })
    t.teardown(() => { own.terminate() })
    const [message] = await received as [Buffer]
    t.equal(String(message), 'mine', "the app's own websocket routes work alongside")
  })
})

t.test('an app without realtime routes', async (t) => {
  const { connect } = await appFixture(t)
  const client = await connect()
  t.same(await client.subscribe({ id: 1, model: 'tasks', action: 'list' }), { type: 'error', id: 1, code: 404, message: "no realtime route follows model 'tasks' (known models: none)" })
})

t.test('a custom path', async (t) => {
  const { app, table } = await tasksFixture(t, { plugin: { path: '/live/socket' } })
  const client = await TestClient.connect(app, { authorization: 'Bearer 1' }, '/live/socket')
  t.teardown(() => { client.close() })
  t.match(await client.subscribe({ id: 1, model: table, action: 'list' }), { type: 'subscribed' })
  await t.rejects(TestClient.connect(app, {}, '/ws/subscribe'), /Unexpected server response: 404/, 'the default path is not served')
})

t.test('allowedOrigins guards every browser socket', async (t) => {
  const { app, db } = await tasksFixture(t, { plugin: { allowedOrigins: ['https://app.example', 'https://admin.example:8443'] } })
  const host = 'api.example:8080'
  const cookie = 'session=abc'
  const accepted = async (headers: Record<string, string>): Promise<void> => {
    const client = await TestClient.connect(app, { host, ...headers })
    t.teardown(() => { client.close() })
    t.match(await client.request('GET', '/tasks'), { type: 'response' }, `accepted: ${JSON.stringify(headers)}`)
  }
  const refused = async (headers: Record<string, string>, message: string): Promise<void> => {
    await t.rejects(TestClient.connect(app, { host, ...headers }), /Unexpected server response: 403/, `refused: ${JSON.stringify(headers)}`)
    const refusal = await app.inject({ method: 'GET', url: '/ws/subscribe', headers: { host, ...headers } })
    t.match(refusal.json(), { statusCode: 403, message })
  }

  const notListed = (origin: string): string => `origin ${origin} is not in allowedOrigins (scheme, host and port must match an entry exactly)`
  await refused({ cookie, origin: 'https://evil.example' }, notListed('https://evil.example'))
  await refused({ origin: 'https://evil.example', authorization: 'Bearer 1' }, notListed('https://evil.example'))
  await refused({ origin: 'https://evil.example' }, notListed('https://evil.example'))
  await refused({ cookie, origin: 'http://app.example' }, notListed('http://app.example'))
  await refused({ cookie, origin: 'https://app.example:8443' }, notListed('https://app.example:8443'))
  await refused({ cookie, origin: 'https://admin.example' }, notListed('https://admin.example'))
  await refused({ cookie, origin: 'null' }, 'origin "null" is not a valid origin')
  await refused({ cookie, origin: 'https://app.example/page' }, 'origin "https://app.example/page" is not a valid origin')

  await accepted({ cookie, origin: 'https://app.example' })
  await accepted({ cookie, origin: 'https://APP.example:443' })
  await accepted({ origin: 'https://admin.example:8443', authorization: 'Bearer 1' })
  await accepted({ cookie, origin: 'http://api.example:8080' })
  await accepted({ cookie })

  t.test('entries must be origins', async (t) => {
    const err = await registrationError(t, db, { knex: db, allowedOrigins: ['https://app.example', 'https://b.example/app'] })
    t.match(err, { code: 'FST_REST_LIVE_INVALID_OPTION', message: /option 'allowedOrigins\[1\]' must be an origin like "https:\/\/app.example.com".*got "https:\/\/b.example\/app"/ })
  })

  t.test('without allowedOrigins only the same origin may use cookies', async (t) => {
    const { app: plain } = await tasksFixture(t)
    await t.rejects(TestClient.connect(plain, { host, cookie, origin: 'https://app.example' }), /403/)
    const same = await TestClient.connect(plain, { host, cookie, origin: 'https://api.example:8080' })
    t.teardown(() => { same.close() })
    t.match(await same.ask({ type: 'unsubscribe', id: 'ping' }), { id: 'ping' }, 'the same origin with cookies: accepted, and answered')
    const cookieless = await TestClient.connect(plain, { host, origin: 'https://other.example', authorization: 'Bearer 1' })
    t.teardown(() => { cookieless.close() })
    t.match(await cookieless.ask({ type: 'unsubscribe', id: 'ping' }), { id: 'ping' }, 'another origin without cookies: accepted, and answered')
  })
})

t.test('graceful shutdown', async (t) => {
  const { db, table } = await database(t)
  const prototype = Object.getPrototypeOf(db.client) as object
  const { app } = await buildTasksApp({ db, table })
  t.not(Object.getPrototypeOf(db.client), prototype, 'capture is installed on the knex client')
  // over a real socket: app.injectWS's in-memory stream never finishes a close the server starts
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  const socket = new WebSocket(`${address.replace(/^http/, 'ws')}/ws/subscribe`, { headers: { authorization: 'Bearer 1' } })
  await once(socket, 'open')
  const client = new TestClient(socket)
  t.match(await client.subscribe({ id: 1, model: table, action: 'list' }), { type: 'subscribed' })
  t.equal(app.realtime.stats().connections, 1)

  const closed = once(socket, 'close')
  await app.close()
  const [code, reason] = await closed as [number, Buffer]
  t.equal(code, 1001, 'open sockets are closed with 1001 (going away)')
  t.equal(String(reason), 'server shutting down')

  t.equal(Object.getPrototypeOf(db.client), prototype, 'capture is uninstalled from the knex client')
  await db(table).insert({ title: 'after close', owner_id: 1 })
  await db.transaction(async (trx) => { await trx(table).update({ done: true }) })
  t.equal((await db(table).where({ done: true })).length, 1, 'the knex instance keeps working')
  t.equal(app.realtime.stats().eventsReceived, 0, 'and nothing written after close is captured')

  t.test('a new app on the same knex captures again', async (t) => {
    const { app: next } = await buildTasksApp({ db, table })
    t.teardown(async () => { await next.close() })
    const again = await TestClient.connect(next, { authorization: 'Bearer 1' })
    t.teardown(() => { again.close() })
    await again.subscribe({ id: 1, model: table, action: 'list' })
    await db(table).insert({ title: 'next', owner_id: 1 })
    await again.flush(next)
    t.same(again.broadcasts(1).map((f) => f.action), ['CREATED'])
  })
})

t.test('app.realtime.list / retrieve', async (t) => {
  const { app, db, tables: table } = await appFixture(t, {
    tables: tasksTable(),
    routes: (app, db, table) => {
      app.get('/plain', async (request) => await app.realtime.list(request))
      app.get('/plain/:id', async (request) => await app.realtime.retrieve(request))
      app.get('/no-queryset', { config: { realtime: { model: table } } }, async (request) => await app.realtime.list(request))
      app.get('/tasks/:id', { config: { realtime: { model: table, queryset: () => db(table) } } }, async (request) => await app.realtime.retrieve(request))
      app.get('/tasks', { config: { realtime: { model: table, queryset: () => db(table).orderBy('id') } } }, async (request) => await app.realtime.list(request))
      app.setNotFoundHandler(async (request) => await app.realtime.list(request))
    }
  })
  await db(table).insert({ title: 'a', owner_id: 1 })
  t.match((await app.inject('/nowhere')).json(), { statusCode: 500, code: 'FST_REST_LIVE_NOT_A_REALTIME_ROUTE', message: /called from GET \/nowhere,/ }, 'from the not-found handler')

  const notRealtime = await app.inject('/plain')
  t.equal(notRealtime.statusCode, 500)
  t.match(notRealtime.json(), { code: 'FST_REST_LIVE_NOT_A_REALTIME_ROUTE', message: 'fastify-rest-live: app.realtime.list() was called from GET /plain, which has no config.realtime' })
  t.match((await app.inject('/plain/1')).json(), { statusCode: 500, code: 'FST_REST_LIVE_NOT_A_REALTIME_ROUTE', message: /app\.realtime\.retrieve\(\) was called from GET \/plain\/:id/ })
  t.match((await app.inject('/no-queryset')).json(), { statusCode: 500, code: 'FST_REST_LIVE_NO_QUERYSET', message: /app\.realtime\.list\(\) needs config\.realtime\.queryset on route \/no-queryset/ })

  const missing = await app.inject('/tasks/99')
  t.equal(missing.statusCode, 404)
  t.match(missing.json(), { code: 'FST_REST_LIVE_NOT_FOUND', message: `No ${table} instance with id 99` })
  t.match((await app.inject('/tasks/1')).json(), { id: 1, title: 'a' })
  t.match((await app.inject('/tasks')).json(), [{ id: 1, title: 'a' }])
})

t.test('app.realtime.publish', async (t) => {
  const { app, db, table, user } = await tasksFixture(t)
  const client = await user(1)
  await client.subscribe({ id: 1, model: table, action: 'list' })

  const invalid: Array<[unknown[], RegExp]> = [
    [['', 'insert', []], /model must be a table name/],
    [[table, 'upsert', []], /op must be 'insert', 'update' or 'delete', got "upsert"/],
    [[table, 'insert', { id: 1 }], /rows must be an array/],
    [[table, 'insert', [{ id: 1 }, { title: 'no pk' }]], /rows\[1\] has no primary key 'id'/],
    [[table, 'delete', [null]], /rows\[0\] has no primary key/]
  ]
  const publish = app.realtime.publish as (...args: unknown[]) => Promise<void>
  for (const [args, message] of invalid) {
    await t.rejects(publish(...args), { code: 'FST_REST_LIVE_INVALID_PUBLISH', message }, `publish(${JSON.stringify(args)})`)
  }
  await app.realtime.publish(table, 'insert', [])

  await db.raw(`insert into ${table} (title, owner_id) values ('raw', 1)`)
  await client.flush(app)
  t.same(client.broadcasts(1), [], 'raw SQL is not captured')
  await app.realtime.publish(table, 'insert', [{ id: 1 }])
  await client.flush(app)
  t.match(client.broadcasts(1), [{ action: 'CREATED', instance: { id: 1, title: 'raw' } }], 'publish announces it')
  await app.realtime.publish('some_other_table', 'update', [{ id: 1 }])
})

t.test('app.realtime.stats counts connections, subscriptions and broadcasts', async (t) => {
  const { app, db, table } = await tasksFixture(t)
  t.match(app.realtime.stats(), { connections: 0, subscriptions: 0, broadcastsSent: 0, eventsReceived: 0, resyncsSent: 0, gapsDetected: 0 })

  const a = await TestClient.connect(app, { authorization: 'Bearer 1' })
  const b = await TestClient.connect(app, { authorization: 'Bearer 1' })
  t.equal(app.realtime.stats().connections, 2)
  await a.subscribe({ id: 1, model: table, action: 'list' })
  await a.subscribe({ id: 2, model: table, action: 'list', query_params: { done: false } })
  await b.subscribe({ id: 1, model: table, action: 'list' })
  t.equal(app.realtime.stats().subscriptions, 3)

  await db(table).insert({ title: 'x', owner_id: 1 })
  await a.flush(app)
  await b.flush(app)
  const stats = app.realtime.stats()
  t.equal(stats.broadcastsSent, 3, 'one broadcast per subscription told')
  t.equal(stats.eventsReceived, 1)
  t.ok(stats.databaseChecks >= 1)
  t.same(Object.values(stats).map((value) => typeof value), Object.keys(stats).map(() => 'number'), 'plain numbers')

  await a.ask({ type: 'unsubscribe', id: 2 })
  t.equal(app.realtime.stats().subscriptions, 2)
  b.close()
  await eventually(() => app.realtime.stats().connections <= 1, 'the socket closing')
  t.equal(app.realtime.stats().subscriptions, 1, "a closed socket's subscriptions are dropped")
  a.close()
})
