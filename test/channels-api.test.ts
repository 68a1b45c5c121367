/**
 * channels-api compatibility: the README's examples replayed against a Fastify
 * app whose `questions` routes are the permissions, validation and logic.
 */
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import type { Knex } from 'knex'
import t, { type Test } from 'tap'
import { WebSocket } from 'ws'
import { actionOf, allowAny, isAuthenticated, isUser, permission, pkOf, streamOf, type RestLiveOptions } from '../lib/index.js'
import { ChannelsProtocol, errorsOf, paginate, targetOf } from '../lib/channels/adapter.js'
import { EventSubscriber } from '../lib/channels/events.js'
import { isChannelsFrame, validateChannelsFrame } from '../lib/channels/frames.js'
import { Seal } from '../lib/channels/permissions.js'
import { pageOf, queryOf, ResourceTable } from '../lib/channels/resource.js'
import { Broadcast, ViewText } from '../lib/subscriptions/outbound.js'
import type { Subscription } from '../lib/subscriptions/subscription.js'
import type { ConnectionContext } from '../lib/ws/connection.js'
import { SocketSubscriptions } from '../lib/ws/socket-subscriptions.js'
import { appFixture } from './helpers/fixture.js'
import { eventually } from './helpers/eventually.js'
import { TestClient } from './helpers/ws-client.js'

interface User { id: number, admin: boolean }
interface Payload {
  action: string
  data?: unknown
  errors?: unknown[]
  response_status?: number
  request_id?: string | number | null
  pk?: unknown
  model?: string
  [key: string]: unknown
}
interface ChannelsFrameOut { stream: string | null, payload: Payload }

function userOf (request: FastifyRequest): User | null {
  return (request as FastifyRequest & { user: User | null }).user
}

const QuestionSchema = {
  type: 'object',
  properties: { id: { type: 'integer' }, question_text: { type: 'string' }, published: { type: 'boolean' } },
  required: ['id', 'question_text', 'published']
} as const

interface Built { app: FastifyInstance, db: Knex, table: string, notes: string, connect: (headers?: Record<string, string>) => Promise<TestClient> }

async function build (t: Pick<Test, 'teardown'>, plugin: Partial<RestLiveOptions> = {}): Promise<Built> {
  const { app, db, tables: { table, notes }, connect } = await appFixture(t, {
    tables: async (db, name) => {
      const table = name('questions')
      await db.schema.createTable(table, (col) => {
        col.increments('id').primary()
        col.string('question_text').notNullable()
        col.boolean('published').notNullable().defaultTo(false)
      })
      const notes = name('notes')
      await db.schema.createTable(notes, (col) => {
        col.increments('id').primary()
        col.string('body').notNullable()
      })
      return { table, notes }
    },
    before: (app) => {
      app.decorateRequest('user', null)
      app.addHook('onRequest', async (request) => {
        // Bearer <id>; ids above 100 are admins
        const match = /^Bearer (\d+)$/.exec(request.headers.authorization ?? '')
        ;(request as FastifyRequest & { user: User | null }).user = match ? { id: Number(match[1]), admin: Number(match[1]) > 100 } : null
      })
    },
    plugin,
    routes: questionsRoutes
  })
  return { app, db, table, notes, connect: async (headers) => await connect(headers) }
}

/** The questions and notes resources and their routes (channels-api's example app). */
function questionsRoutes (app: FastifyInstance, db: Knex, { table, notes }: { table: string, notes: string }): void {
  app.realtime.resource('questions', { prefix: '/questions' })
  app.realtime.resource('notes', { prefix: '/notes', pageSize: 2, model: 'note' })
  app.realtime.resource('stats', { prefix: '/stats' })
  app.realtime.resource('ghost', { prefix: '/ghost' })

  const queryset = (request: FastifyRequest): Knex.QueryBuilder => {
    if (userOf(request)?.id === 666) throw new Error('queryset exploded')
    const query = request.query as { published?: boolean }
    const builder = db(table).orderBy(`${table}.id`)
    return query.published === undefined ? builder : builder.where(`${table}.published`, query.published)
  }
  const row = (value: Record<string, unknown>): Record<string, unknown> => ({ ...value, published: Boolean(value.published) })
  const IdParams = { type: 'object', properties: { id: { type: 'integer' } }, required: ['id'] } as const
  // only admins change questions: channels-api's has_permission(user, action, pk)
  const adminsChange = permission((user, action) => action === 'retrieve' || (user as User | null)?.admin === true, { userOf })

  app.get('/questions', {
    schema: {
      querystring: { type: 'object', properties: { published: { type: 'boolean' } }, additionalProperties: false },
      response: { 200: { type: 'array', items: QuestionSchema } }
    },
    onRequest: allowAny,
    config: { realtime: { model: table, queryset } },
    handler: async (request) => (await app.realtime.list(request)).map(row)
  })
  app.get('/questions/:id', {
    schema: { params: IdParams, response: { 200: QuestionSchema } },
    preHandler: adminsChange,
    config: { realtime: { model: table, queryset } },
    handler: async (request) => row(await app.realtime.retrieve(request))
  })
  app.post('/questions', {
    schema: {
      body: { type: 'object', properties: { question_text: { type: 'string', minLength: 1 } }, required: ['question_text'], additionalProperties: false },
      response: { 201: QuestionSchema }
    },
    onRequest: isAuthenticated,
    handler: async (request, reply) => {
      const [created] = await db(table).insert(request.body as object).returning('*') as Array<Record<string, unknown>>
      return await reply.code(201).send(row(created as Record<string, unknown>))
    }
  })
  app.patch('/questions/:id', {
    schema: {
      params: IdParams,
      body: { type: 'object', properties: { question_text: { type: 'string', minLength: 1 } }, additionalProperties: false },
      response: { 200: QuestionSchema, 404: { type: 'object', properties: { message: { type: 'string' } } } }
    },
    preHandler: adminsChange,
    handler: async (request, reply) => {
      const id = (request.params as { id: number }).id
      if (await db(table).where({ id }).update(request.body as object) === 0) return await reply.code(404).send({ message: 'Not found.' })
      return row(await db(table).where({ id }).first() as Record<string, unknown>)
    }
  })
  app.delete('/questions/:id', {
    schema: { params: IdParams },
    preHandler: adminsChange,
    handler: async (request, reply) => {
      const deleted = await db(table).where({ id: (request.params as { id: number }).id }).del()
      return await reply.code(deleted === 0 ? 404 : 204).send()
    }
  })
  // channels-api's @detail_action publish and @list_action report
  app.post('/questions/:id/publish', {
    schema: { params: IdParams },
    preHandler: adminsChange,
    handler: async (request, reply) => {
      const id = (request.params as { id: number }).id
      if (await db(table).where({ id }).update({ published: true }) === 0) return await reply.code(404).send({ message: 'Not found.' })
      return row(await db(table).where({ id }).first() as Record<string, unknown>)
    }
  })
  app.get('/questions/report', async (request) => {
    const rows = await db(table) as Array<Record<string, unknown>>
    return { total: rows.length, published: rows.filter((r) => Boolean(r.published)).length, action: actionOf(request), query: request.query }
  })
  app.get('/questions/ping', async () => 'pong')
  app.get('/questions/:id/whoami', async (request) => ({ action: actionOf(request), pk: pkOf(request), stream: streamOf(request) }))

  // notes: a realtime list without a queryset (re-run for subscribers), updated with PUT
  app.get('/notes', { config: { realtime: { model: notes } } }, async () => await db(notes).orderBy('id'))
  app.put('/notes/:id', async (request) => {
    const id = Number((request.params as { id: string }).id)
    await db(notes).where({ id }).update(request.body as object)
    return await db(notes).where({ id }).first()
  })
  app.get('/stats', async () => ({ questions: 'many' }))
}

let requestCounter = 0

async function ask (client: TestClient, stream: unknown, payload: Record<string, unknown>): Promise<ChannelsFrameOut> {
  const requestId = payload.request_id ?? `req-${++requestCounter}`
  const answer = client.next((f) => (f as unknown as ChannelsFrameOut).payload?.request_id === requestId && (f as unknown as ChannelsFrameOut).payload.response_status !== undefined)
  client.send({ stream, payload: { ...payload, request_id: requestId } })
  return await answer as unknown as ChannelsFrameOut
}

function events (client: TestClient, stream: string): Payload[] {
  return (client.frames as unknown as ChannelsFrameOut[])
    .filter((f) => f.stream === stream && f.payload !== undefined && f.payload.response_status === undefined)
    .map((f) => f.payload)
}

t.test('the README examples, replayed', async (t) => {
  const { db, table, connect } = await build(t)
  const client = await connect({ authorization: 'Bearer 101' })

  const created = await ask(client, 'questions', { action: 'create', data: { question_text: 'What is your favorite python package?' }, request_id: 'some-guid' })
  t.same(created, {
    stream: 'questions',
    payload: { action: 'create', data: { id: 1, question_text: 'What is your favorite python package?', published: false }, errors: [], response_status: 201, request_id: 'some-guid' }
  })

  const retrieved = await ask(client, 'questions', { action: 'retrieve', pk: 1 })
  t.equal(retrieved.payload.response_status, 200)
  t.same(retrieved.payload.data, { id: 1, question_text: 'What is your favorite python package?', published: false })

  const updated = await ask(client, 'questions', { action: 'update', pk: '1', data: { question_text: 'Which package?' } })
  t.equal(updated.payload.response_status, 200)
  t.same(updated.payload.data, { id: 1, question_text: 'Which package?', published: false })

  // pk inside data, as the README's custom action example sends it
  const published = await ask(client, 'questions', { action: 'publish', data: { pk: '1' } })
  t.equal(published.payload.response_status, 200)
  t.same(published.payload.data, { id: 1, question_text: 'Which package?', published: true })

  const report = await ask(client, 'questions', { action: 'report', data: { since: 2020, tags: ['a', 'b'], nested: { x: 1 }, none: null } })
  t.same(report.payload.data, { total: 1, published: 1, action: 'report', query: { since: '2020', tags: ['a', 'b'], nested: '{"x":1}' } })
  t.same((await ask(client, 'questions', { action: 'ping' })).payload.data, 'pong')
  t.same((await ask(client, 'questions', { action: 'whoami', pk: 1 })).payload.data, { action: 'whoami', pk: '1', stream: 'questions' })

  const deleted = await ask(client, 'questions', { action: 'delete', pk: 1 })
  t.same(deleted.payload, { action: 'delete', data: {}, errors: [], response_status: 204, request_id: deleted.payload.request_id })
  t.equal((await ask(client, 'questions', { action: 'retrieve', pk: 1 })).payload.response_status, 404)
  t.equal(await db(table).count({ n: '*' }).first().then((r) => Number(r?.n)), 0)
})

t.test('list pages the list route\'s array', async (t) => {
  const { db, table, connect } = await build(t)
  await db(table).insert(Array.from({ length: 30 }, (_, i) => ({ question_text: `q${i + 1}`, published: i < 3 })))
  const client = await connect()

  const first = await ask(client, 'questions', { action: 'list' })
  t.equal((first.payload.data as unknown[]).length, 25)
  t.match(first.payload, { action: 'list', errors: [], response_status: 200, page: 1, page_size: 25, count: 30, has_next: true })
  const second = await ask(client, 'questions', { action: 'list', data: { page: '2' } })
  t.same((second.payload.data as Array<{ id: number }>).map((q) => q.id), [26, 27, 28, 29, 30])
  t.match(second.payload, { page: 2, count: 30, has_next: false })
  const third = await ask(client, 'questions', { action: 'list', data: { page: 3 } })
  t.match(third.payload, { response_status: 404, errors: ['Invalid page.'], data: null })
  const bad = await ask(client, 'questions', { action: 'list', data: { page: 0 } })
  t.match(bad.payload, { response_status: 400, errors: ['Invalid page.'] })
  t.match((await ask(client, 'questions', { action: 'list', data: { page: 'two' } })).payload, { response_status: 400 })
  // the rest of data is the list route's query string, validated by its schema
  const filtered = await ask(client, 'questions', { action: 'list', data: { published: true, page: null } })
  t.match(filtered.payload, { count: 3, has_next: false })
  const invalid = await ask(client, 'questions', { action: 'list', data: { published: 'maybe' } })
  t.match(invalid.payload, { response_status: 400, errors: ['querystring/published must be boolean'] })
  // an empty list is a first page
  const empty = await ask(client, 'questions', { action: 'list', data: [] })
  t.match(empty.payload, { response_status: 200, count: 30 })
  // a list route answering something else than an array is passed through
  t.same((await ask(client, 'stats', { action: 'list' })).payload.data, { questions: 'many' })
})

t.test('errors keep the channels-api shape', async (t) => {
  const { db, table, connect } = await build(t)
  await db(table).insert({ question_text: 'q1' })
  const anonymous = await connect()
  const user = await connect({ authorization: 'Bearer 7' })
  const admin = await connect({ authorization: 'Bearer 101' })

  t.same((await ask(admin, 'questions', { action: 'frobnicate', request_id: 7 })).payload, {
    action: 'frobnicate', data: null, errors: ['Invalid Action'], response_status: 400, request_id: 7
  })
  t.match((await ask(admin, 'questions', { action: 'no/such' })).payload, { response_status: 400, errors: ['Invalid Action'] })
  t.match((await ask(admin, 'questions', { action: 'publish' })).payload, { response_status: 400, errors: ['Invalid Action'] })
  for (const action of ['list', 'create', 'retrieve', 'update', 'delete', 'subscribe']) {
    const answer = await ask(admin, 'ghost', { action, pk: 1, data: { action: 'update' } })
    t.match(answer.payload, { response_status: 400, errors: ['Invalid Action'] }, `ghost ${action}`)
  }
  t.match((await ask(admin, 'questions', { action: 'retrieve' })).payload, { response_status: 400, errors: ['action "retrieve" needs a pk'] })
  t.match((await ask(admin, 'questions', { action: 'update', data: { question_text: 'x' } })).payload, { response_status: 400, errors: ['action "update" needs a pk'] })

  const validation = await ask(admin, 'questions', { action: 'create', data: { question_text: '' } })
  t.match(validation.payload, { response_status: 400, data: null, errors: ['body/question_text must NOT have fewer than 1 characters'] })
  t.match((await ask(admin, 'questions', { action: 'create' })).payload, { response_status: 400 })
  t.match((await ask(anonymous, 'questions', { action: 'create', data: { question_text: 'x' } })).payload, { response_status: 401, errors: ['Permission Denied'] })
  t.match((await ask(user, 'questions', { action: 'update', pk: 1, data: { question_text: 'x' } })).payload, { response_status: 403, errors: ['Permission Denied'] })
  t.match((await ask(anonymous, 'questions', { action: 'delete', pk: 1 })).payload, { response_status: 401 })
  t.match((await ask(user, 'questions', { action: 'retrieve', pk: 1 })).payload, { response_status: 200 })
  t.match((await ask(admin, 'questions', { action: 'retrieve', pk: 999 })).payload, { response_status: 404, errors: [/No .* instance with id 999/] })
  t.match((await ask(admin, 'questions', { action: 'update', pk: 999, data: { question_text: 'x' } })).payload, { response_status: 404, errors: ['Not found.'] })
  t.match((await ask(admin, 'questions', { action: 'retrieve', pk: 'abc' })).payload, { response_status: 400, errors: ['params/id must be integer'] })

  // frames that are not valid channels-api frames
  t.match((await ask(admin, 'nowhere', { action: 'list' })).payload, { response_status: 404, errors: [/no channels-api stream "nowhere" \(declared: questions, notes, stats, ghost\)/] })
  t.match((await ask(admin, 42, { action: 'list' })), { stream: null, payload: { response_status: 400, errors: ['invalid "stream" in channels-api frame: expected string'] } })
  t.match((await ask(admin, 'questions', { action: '' })), { stream: 'questions', payload: { action: '', response_status: 400, errors: [/invalid "payload.action"/] } })
  const extra = admin.next((f) => (f as unknown as ChannelsFrameOut).payload?.errors !== undefined && String((f as unknown as ChannelsFrameOut).payload.errors?.[0]).includes('unknown field'))
  admin.send({ stream: 'questions', payload: { action: 'list', request_id: { no: 1 } }, type: 'x' })
  t.match(await extra, { payload: { request_id: null, errors: ['unknown field "type" in channels-api frame (allowed: stream, payload)'] } })
  const nullPayload = admin.next((f) => String((f as unknown as ChannelsFrameOut).payload?.errors?.[0]).includes('"payload"'))
  admin.send({ stream: 'questions', payload: null })
  t.match(await nullPayload, { stream: 'questions', payload: { action: null, response_status: 400 } })

  // a failure that is not an HTTP answer is a 500 with no details
  const boom = await connect({ authorization: 'Bearer 666' })
  t.match((await ask(boom, 'questions', { action: 'subscribe', data: { action: 'create' } })).payload, { response_status: 500, errors: ['internal error'] })
})

t.test('subscribe delivers channels-api events, re-checked per subscriber', async (t) => {
  const { app, db, table, connect } = await build(t)
  await db(table).insert([{ question_text: 'q1' }, { question_text: 'q2' }])
  const client = await connect({ authorization: 'Bearer 101' })

  // get an event when question(1) is updated
  const subscribed = await ask(client, 'questions', { action: 'subscribe', pk: '1', data: { action: 'update' } })
  t.same(subscribed.payload, { action: 'subscribe', data: { action: 'update', pk: '1' }, errors: [], response_status: 200, request_id: subscribed.payload.request_id })
  t.equal(app.realtime.stats().subscriptions, 1)
  // subscribing again is a no-op
  t.equal((await ask(client, 'questions', { action: 'subscribe', pk: '1', data: { action: 'update' } })).payload.response_status, 200)
  t.equal(app.realtime.stats().subscriptions, 1)

  await db(table).where({ id: 1 }).update({ question_text: 'q1 edited' })
  await db(table).where({ id: 2 }).update({ question_text: 'q2 edited' })
  await client.flush(app)
  t.same(events(client, 'questions'), [{ action: 'update', pk: 1, data: { id: 1, question_text: 'q1 edited', published: false }, model: table }])

  // any question created, any question deleted, through the list route
  t.same((await ask(client, 'questions', { action: 'subscribe', data: { action: 'create' } })).payload.data, { action: 'create' })
  t.same((await ask(client, 'questions', { action: 'subscribe', data: { action: 'delete' } })).payload.data, { action: 'delete' })
  // an update of pk 2 through the list route with the pk in data
  t.same((await ask(client, 'questions', { action: 'subscribe', data: { action: 'update', pk: 2 } })).payload.data, { action: 'update', pk: 2 })
  // create with a pk follows the list (the instance does not exist yet)
  t.same((await ask(client, 'questions', { action: 'subscribe', pk: 3, data: { action: 'create' } })).payload.data, { action: 'create', pk: 3 })
  await ask(client, 'questions', { action: 'create', data: { question_text: 'q3' } })
  await ask(client, 'questions', { action: 'update', pk: 2, data: { question_text: 'q2 again' } })
  await client.flush(app) // else the update and the delete may be checked as one change: deleted
  await ask(client, 'questions', { action: 'delete', pk: 2 })
  await client.flush(app)
  t.same(events(client, 'questions').slice(1), [
    { action: 'create', pk: 3, data: { id: 3, question_text: 'q3', published: false }, model: table },
    { action: 'create', pk: 3, data: { id: 3, question_text: 'q3', published: false }, model: table },
    { action: 'update', pk: 2, data: { id: 2, question_text: 'q2 again', published: false }, model: table },
    { action: 'delete', pk: 2, data: { id: 2 }, model: table }
  ])

  // unsubscribe releases it
  const before = app.realtime.stats().subscriptions
  t.same((await ask(client, 'questions', { action: 'unsubscribe', data: { action: 'create' } })).payload, {
    action: 'unsubscribe', data: { action: 'create' }, errors: [], response_status: 200, request_id: 'req-' + String(requestCounter)
  })
  t.equal(app.realtime.stats().subscriptions, before - 1)
  t.match((await ask(client, 'questions', { action: 'unsubscribe', pk: 1, data: { action: 'update' } })).payload, { response_status: 200, data: { action: 'update', pk: 1 } })
  t.match((await ask(client, 'questions', { action: 'unsubscribe', data: { action: 'create' } })).payload, { response_status: 404, errors: ['Not subscribed'] })
  await db(table).insert({ question_text: 'q4' })
  await db(table).where({ id: 1 }).update({ question_text: 'q1 again' })
  await client.flush(app)
  t.equal(events(client, 'questions').length, 5, 'no events after unsubscribing')

  // bad subscriptions
  t.match((await ask(client, 'questions', { action: 'subscribe' })).payload, { response_status: 400, errors: ['action required'] })
  t.match((await ask(client, 'questions', { action: 'subscribe', data: { action: 'upsert' } })).payload, { response_status: 400, errors: ['data.action must be one of create, update, delete, got "upsert"'] })
  t.match((await ask(client, 'questions', { action: 'unsubscribe', data: { action: 7 } })).payload, { response_status: 400 })
  t.match((await ask(client, 'questions', { action: 'subscribe', pk: 999, data: { action: 'update' } })).payload, { response_status: 404 })

  // closing the socket releases every subscription
  t.ok(app.realtime.stats().subscriptions > 0)
  client.close()
  await eventually(() => app.realtime.stats().subscriptions === 0)
  t.equal(app.realtime.stats().subscriptions, 0)
})

t.test('subscriptions without a queryset, and the limits', async (t) => {
  const { app, db, notes: notesTable, connect } = await build(t, { maxSubscriptions: 2 })
  const client = await connect()
  await db(notesTable).insert([{ body: 'a' }, { body: 'b' }, { body: 'c' }])

  t.match((await ask(client, 'notes', { action: 'list' })).payload, { page_size: 2, count: 3, has_next: true })
  t.equal((await ask(client, 'notes', { action: 'subscribe', data: { action: 'update' } })).payload.response_status, 200)
  const native = await client.subscribe({ id: 'native', model: notesTable, action: 'list' })
  t.same(native, { type: 'subscribed', id: 'native' })
  t.match((await ask(client, 'notes', { action: 'subscribe', data: { action: 'create' } })).payload, { response_status: 429 })
  t.match(await client.subscribe({ id: 'native2', model: notesTable, action: 'list' }), { type: 'error', code: 429 }, 'native subscriptions count channels ones')
  const updated = await ask(client, 'notes', { action: 'update', pk: 2, data: { body: 'B' } })
  t.match(updated.payload, { response_status: 200, data: { id: 2, body: 'B' } })
  await client.flush(app)
  t.same(events(client, 'notes'), [{ action: 'update', pk: 2, data: { id: 2, body: 'B' }, model: 'note' }])
  t.same(client.broadcasts('native').map((f) => f.action), ['UPDATED'], 'the native protocol works on the same socket')
  const response = await client.request('GET', '/notes')
  t.equal(response.status, 200)
})

t.test('a socket closed or an unsubscribe sent while subscribing', async (t) => {
  const { app, connect } = await build(t)
  const client = await connect()
  client.send({ stream: 'questions', payload: { action: 'subscribe', data: { action: 'create' }, request_id: 'a' } })
  client.send({ stream: 'questions', payload: { action: 'unsubscribe', data: { action: 'create' }, request_id: 'b' } })
  const unsubscribed = await client.next((f) => (f as unknown as ChannelsFrameOut).payload?.request_id === 'b')
  t.match(unsubscribed, { payload: { response_status: 200 } })
  await client.next((f) => (f as unknown as ChannelsFrameOut).payload?.request_id === 'a')
  await app.realtime.settled()
  await eventually(() => app.realtime.stats().subscriptions === 0, 'the unsubscribe')
  t.equal(app.realtime.stats().subscriptions, 0)

  client.send({ stream: 'questions', payload: { action: 'subscribe', data: { action: 'delete' } } })
  await new Promise((resolve) => setImmediate(resolve))
  client.close()
  await eventually(() => app.realtime.stats().connections === 0, 'the socket closing')
  // a barrier, not a pause: another socket's subscribe runs the same route on the same (one-connection)
  // SQLite after the closed socket's, so once it is answered the closed socket's subscribe has settled
  const barrier = await connect()
  barrier.send({ stream: 'questions', payload: { action: 'subscribe', data: { action: 'delete' }, request_id: 'barrier' } })
  await barrier.next((f) => (f as unknown as ChannelsFrameOut).payload?.request_id === 'barrier')
  await app.realtime.settled()
  t.equal(app.realtime.stats().subscriptions, 1, "only the barrier's: the closed socket's subscribe left nothing behind")
})

t.test('a congested socket gets a resync event once it drains', async (t) => {
  const { app, db, table } = await build(t, { maxBufferedBytes: 64 * 1024 })
  await db(table).insert({ question_text: 'start' })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  const socket = new WebSocket(address.replace('http', 'ws') + '/ws/subscribe', { headers: { authorization: 'Bearer 101' } })
  const frames: ChannelsFrameOut[] = []
  socket.on('message', (data) => { frames.push(JSON.parse(String(data)) as ChannelsFrameOut) })
  await new Promise((resolve) => socket.once('open', resolve))
  socket.send(JSON.stringify({ stream: 'questions', payload: { action: 'subscribe', pk: 1, data: { action: 'update' } } }))
  await eventually(() => frames.length === 1)
  t.equal(frames[0]?.payload.response_status, 200)
  const raw = (socket as unknown as { _socket: { pause: () => void, resume: () => void } })._socket
  raw.pause()
  const big = 'x'.repeat(256 * 1024)
  for (let i = 0; i < 60; i++) {
    await db(table).where({ id: 1 }).update({ question_text: `${i}:${big}` })
    await app.realtime.settled()
  }
  raw.resume()
  await eventually(() => frames.some((frame) => frame.payload.action === 'resync'), 'the resync event', 20_000)
  const resync = frames.find((frame) => frame.payload.action === 'resync')
  t.match(resync, { stream: 'questions', payload: { action: 'resync', pk: 1, model: table, data: { id: 1, question_text: /^59:/ } } })
  socket.close()
})

t.test('an app without resources answers channels frames with 404', async (t) => {
  const { connect } = await appFixture(t)
  const client = await connect()
  t.match((await ask(client, 'questions', { action: 'list' })).payload, { response_status: 404, errors: [/\(declared: none\)/] })
})

t.test('app.realtime.resource() validates its arguments', async (t) => {
  const { app } = await build(t)
  const declare = (stream: unknown, options: unknown): void => { app.realtime.resource(stream as string, options as { prefix: string }) }
  t.throws(() => { declare('', { prefix: '/x' }) }, { code: 'FST_REST_LIVE_INVALID_RESOURCE', message: /'stream' must be a non-empty string .*got ""/ })
  t.throws(() => { declare(7, { prefix: '/x' }) }, { message: /'stream' .*got 7/ })
  t.throws(() => { declare('x', null) }, { message: /'options' must be an object like \{ prefix: '\/x' \}, got null/ })
  t.throws(() => { declare('x', []) }, { message: /'options' .*got an array/ })
  t.throws(() => { declare('x', { prefix: '/x', page_size: 3 }) }, { message: /'page_size' is not a resource option \(known: prefix, pageSize, model\)/ })
  t.throws(() => { declare('x', { prefix: 'x' }) }, { message: /'prefix' must be a path like '\/x'.*got "x"/ })
  t.throws(() => { declare('x', { prefix: '/x/' }) }, { message: /'prefix'/ })
  t.throws(() => { declare('x', { prefix: '/x/:id' }) }, { message: /'prefix'/ })
  t.throws(() => { declare('x', {}) }, { message: /'prefix' .*got nothing/ })
  t.throws(() => { declare('x', { prefix: '/x', pageSize: 0 }) }, { message: /'pageSize' must be an integer from 1 to 1000, got 0/ })
  t.throws(() => { declare('x', { prefix: '/x', pageSize: '5' }) }, { message: /'pageSize'/ })
  t.throws(() => { declare('x', { prefix: '/x', pageSize: 2.5 }) }, { message: /'pageSize'/ })
  t.throws(() => { declare('x', { prefix: '/x', model: '' }) }, { message: /'model' must be a non-empty string/ })
  t.throws(() => { declare('x', { prefix: '/x', model: true }) }, { message: /'model' .*got a boolean/ })
  t.throws(() => { declare('questions', { prefix: '/q' }) }, { message: /"questions" is already declared \(prefix \/questions\)/ })
  t.doesNotThrow(() => { declare('x', { prefix: '/api/v1/x', pageSize: 1000, model: 'xs' }) })
  const table = new ResourceTable()
  t.same(table.declare('s', { prefix: '/s' }), { stream: 's', prefix: '/s', pageSize: 25, model: undefined })
  t.same(table.streams(), ['s'])
})

t.test('permission hooks over HTTP', async (t) => {
  const app = Fastify()
  app.decorateRequest('user', null)
  app.addHook('onRequest', async (request) => {
    ;(request as FastifyRequest & { user: unknown }).user = request.headers.authorization === undefined ? null : { name: request.headers.authorization }
  })
  const seen = async (request: FastifyRequest): Promise<unknown> => ({ action: actionOf(request), pk: pkOf(request) ?? null, stream: streamOf(request) ?? null })
  app.get('/things', { onRequest: isAuthenticated }, seen)
  app.get('/things/:id', seen)
  app.route({ method: ['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'], url: '/things/:id', handler: seen })
  app.post('/owned/:id', { preHandler: permission(isUser, { userOf: (request) => request.headers['x-user'] }) }, seen)
  app.post('/async/:id', { preHandler: permission(async (_user, action, pk) => action === 'create' && pk === '1') }, seen)
  // what the plugin does for its registration (without the rest of it)
  const seal = new Seal()
  seal.install(app)
  t.teardown(async () => { await app.close() })

  t.equal((await app.inject('/things')).statusCode, 401)
  t.same((await app.inject({ url: '/things', headers: { authorization: 'me' } })).json(), { action: 'list', pk: null, stream: null })
  t.same((await app.inject('/things/5')).json(), { action: 'retrieve', pk: '5', stream: null })
  for (const [method, action] of [['POST', 'create'], ['PUT', 'update'], ['PATCH', 'update'], ['DELETE', 'delete'], ['OPTIONS', 'options']] as const) {
    t.equal((await app.inject({ method, url: '/things/5' })).json().action, action, method)
  }
  // the channels headers count only with the registration's seal
  const forged = { 'x-rest-live-action': 'retrieve', 'x-rest-live-stream': 'things', 'x-rest-live-seal': 'guess' }
  t.same((await app.inject({ method: 'POST', url: '/things/5', headers: forged })).json(), { action: 'create', pk: '5', stream: null })
  t.same((await app.inject({ method: 'POST', url: '/things/5', headers: seal.headers('things', 'publish', 9) })).json(), { action: 'publish', pk: '9', stream: 'things' })
  t.same((await app.inject({ method: 'POST', url: '/things/5', headers: seal.headers('things', 'report', undefined) })).json(), { action: 'report', pk: null, stream: 'things' })
  t.equal((await app.inject({ method: 'POST', url: '/owned/1' })).statusCode, 401)
  t.equal((await app.inject({ method: 'POST', url: '/owned/1', headers: { 'x-user': 'u' } })).statusCode, 200)
  t.equal((await app.inject({ method: 'POST', url: '/async/1' })).statusCode, 200)
  const refused = await app.inject({ method: 'POST', url: '/async/2', headers: { authorization: 'me' } })
  t.equal(refused.statusCode, 403)
  t.equal(refused.json().message, 'Permission Denied')
  t.throws(() => permission('yes' as unknown as () => boolean), TypeError)
})

t.test('pieces', async (t) => {
  t.same(targetOf({ action: 'x', pk: 1, data: { pk: 2 } }), { pk: 1, data: { pk: 2 } })
  t.same(targetOf({ action: 'x', pk: null, data: { pk: '2', a: 1 } }), { pk: '2', data: { a: 1 } })
  t.same(targetOf({ action: 'x', data: { pk: {} } }), { pk: undefined, data: { pk: {} } })
  t.same(targetOf({ action: 'x', data: 'text' }), { pk: undefined, data: 'text' })

  t.same(errorsOf({ errors: ['a', 'b'] }, 400), ['a', 'b'])
  t.same(errorsOf({ message: 'm' }, 400), ['m'])
  t.same(errorsOf({ field: ['required'] }, 400), [{ field: ['required'] }])
  t.same(errorsOf('nope', 418), ['nope'])
  t.same(errorsOf(undefined, 418), ['request failed with status 418'])

  t.same(queryOf(undefined), '')
  t.same(queryOf({}), '')
  t.same(queryOf({ a: 1, b: [true, 'x'], page: 2 }, 'page'), '?a=1&b=true&b=x')
  t.equal(pageOf(undefined), 1)
  t.equal(pageOf({ page: 4 }), 4)
  t.equal(pageOf({ page: -1 }), undefined)
  t.same(paginate([1, 2, 3], 1, 2, 200), { status: 200, data: [1, 2], extra: { page: 1, page_size: 2, count: 3, has_next: true } })
  t.same(paginate([], 1, 2, 200).extra, { page: 1, page_size: 2, count: 0, has_next: false })

  t.ok(isChannelsFrame({ stream: 'a', payload: {} }))
  t.notOk(isChannelsFrame({ type: 'subscribe', id: 1 }))
  t.notOk(isChannelsFrame(null))
  t.notOk(isChannelsFrame([]))
  t.notOk(isChannelsFrame('x'))
  t.same(validateChannelsFrame({ stream: 'a', payload: { action: 'list', token: 'ignored' } }), { stream: 'a', payload: { action: 'list', token: 'ignored' } })

  // events: filtered by action and pk; a resync is passed on (filtered to the pk)
  const sent: string[] = []
  let acknowledged = 0
  const sink = { send: (frame: string) => { sent.push(frame); return true } }
  const change = (action: 'CREATED' | 'UPDATED', key: string, row: string): Broadcast => new Broadcast('m', action, key, row, 'id')
  const list = (...rows: Array<[string, string]>): ViewText => new ViewText(new Map(rows), false)
  const one = new EventSubscriber(sink, { stream: 's', action: 'update', pk: '1', model: 'm', acknowledged: () => { acknowledged++ } })
  one.subscribed()
  t.equal(acknowledged, 1)
  t.equal(one.broadcast(undefined, change('CREATED', '1', '{"id":1}')), true)
  t.equal(one.broadcast(undefined, change('UPDATED', '2', '{"id":2}')), true)
  t.equal(one.broadcast(undefined, change('UPDATED', '1', '{"id":1,"x":1}')), true)
  one.resync(undefined, list(['1', '{"id":1}'], ['2', '{"id":2}']))
  one.resync(undefined, new ViewText(new Map([['1', '{"id":1}']]), true))
  const any = new EventSubscriber(sink, { stream: 's', action: 'delete', pk: undefined, model: 'm', acknowledged: () => {} })
  any.resync(undefined, list(['3', '{"id":3}']))
  t.equal(any.broadcast(undefined, Broadcast.deleted('m', '3', '{"id":3,"x":1}', 'id')), true)
  t.same(sent.map((frame) => JSON.parse(frame)), [
    { stream: 's', payload: { action: 'update', pk: 1, data: { id: 1, x: 1 }, model: 'm' } },
    { stream: 's', payload: { action: 'resync', pk: '1', data: [{ id: 1 }], model: 'm' } },
    { stream: 's', payload: { action: 'resync', pk: '1', data: { id: 1 }, model: 'm' } },
    { stream: 's', payload: { action: 'resync', pk: null, data: [{ id: 3 }], model: 'm' } },
    { stream: 's', payload: { action: 'delete', pk: 3, data: { id: 3 }, model: 'm' } }
  ])
  const congested = new EventSubscriber({ send: () => false }, { stream: 's', action: 'update', pk: undefined, model: 'm', acknowledged: () => {} })
  t.equal(congested.broadcast(undefined, change('UPDATED', '1', '{"id":1}')), false)
})

t.test('a drained socket resyncs its stale channels-api subscriptions', async (t) => {
  const resynced: unknown[] = []
  const unsubscribed: unknown[] = []
  const route = { id: 1, url: '/q', model: 'q', kind: 'list', lookup: 'id', pk: 'id', params: [], queryset: undefined, response: undefined, serialize: undefined }
  const stale = { stale: true } as unknown as Subscription
  const fresh = { stale: false } as unknown as Subscription
  let next = stale
  const manager = {
    subscribe: async (request: { subscriber: EventSubscriber }) => {
      request.subscriber.subscribed()
      const subscription = next
      next = fresh
      return subscription
    },
    resync: (subscription: unknown) => { resynced.push(subscription) },
    unsubscribe: (subscription: unknown) => { unsubscribed.push(subscription) }
  }
  const ctx = {
    options: { maxSubscriptions: 10 },
    registry: { byUrl: () => route, forModel: () => [route] },
    authorizer: { authorize: async () => ({ kind: 'refetch', route, url: '/q', identity: { headers: {} }, key: 'k', lookupValue: undefined }) },
    revoker: { generation: 0, grant: () => undefined },
    manager,
    view: () => ({})
  } as unknown as ConnectionContext
  const replies: string[] = []
  const subscriptions = new SocketSubscriptions(ctx.manager, 10)
  const peer = { requester: { headers: {}, remoteAddress: undefined }, writer: { reply: (frame: string) => { replies.push(frame) }, send: () => true }, subscriptions }
  const protocol = new ChannelsProtocol(ctx, new Seal())
  protocol.resources.declare('q', { prefix: '/q' })
  await protocol.serve(peer, { stream: 'q', payload: { action: 'subscribe', data: { action: 'update' }, request_id: 1 } })
  await protocol.serve(peer, { stream: 'q', payload: { action: 'subscribe', data: { action: 'create' }, request_id: 1 } })
  t.equal(subscriptions.size, 2)
  t.equal(replies.length, 2)
  subscriptions.resyncStale()
  t.same(resynced, [stale])
  subscriptions.close()
  t.same(unsubscribed, [stale, fresh])
  t.equal(subscriptions.size, 0)
})
