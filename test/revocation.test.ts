/**
 * Revoked access stops streaming: `app.realtime.reauthorize()`, the periodic
 * re-check (`reauthorizeEvery`) and credential expiry (`expiresAt`) re-run a
 * subscription's checks, end the refused ones with an `error` (native) or a
 * refused `subscribe` answer (channels-api) after which nothing more is sent
 * for them, and move the ones whose view changed.
 *
 * The tasks app here is revocable: users in `banned` are refused (403) by an
 * onRequest hook, and a user sees the tasks of their team (`teams`).
 */
import FakeTimers, { type Clock } from '@sinonjs/fake-timers'
import Fastify, { type FastifyRequest } from 'fastify'
import type { Knex } from 'knex'
import t, { type Test } from 'tap'
import restLive, { type RealtimeSubscriptionInfo, type ReauthorizeSummary, type RestLiveOptions } from '../lib/index.js'
import { createTasksTable, sqlite, uniqueName } from './helpers/db.js'
import { replayList } from './helpers/replay.js'
import { task, tasksFixture, told, type Fixture } from './helpers/fixture.js'
import { TestClient, type Frame } from './helpers/ws-client.js'

interface Revocable extends Fixture {
  banned: Set<number>
  teams: Map<number, number>
  /** Per user: until when their session is good (ms since the epoch); absent: forever. */
  sessions: Map<number, number>
  /** Requests by a user seen by the auth hook; while `gate` is set, each waits for it and calls `entered`. */
  hold: { calls: number, gate: Promise<void> | undefined, entered: () => void }
}

/** The tasks fixture with bans, teams (users 1-3 on team 10 unless changed) and sessions; a `tasks` channels-api stream. */
async function revocable (t: Test, plugin: (sessions: Map<number, number>) => Partial<RestLiveOptions> = () => ({})): Promise<Revocable> {
  const banned = new Set<number>()
  const teams = new Map<number, number>()
  const sessions = new Map<number, number>()
  const hold: Revocable['hold'] = { calls: 0, gate: undefined, entered: () => {} }
  const fixture = await tasksFixture(t, {
    prefix: 'revoke',
    plugin: plugin(sessions),
    scope: (userId) => teams.get(userId) ?? 10,
    configure: (app) => {
      app.realtime.resource('tasks', { prefix: '/tasks' })
      app.addHook('onRequest', async (request, reply) => {
        const userId = request.userId
        if (userId === undefined) return
        hold.calls++
        if (hold.gate !== undefined) {
          hold.entered()
          await hold.gate
        }
        if (banned.has(userId)) return await reply.code(403).send({ message: `user ${userId} is banned` })
        if ((sessions.get(userId) ?? Infinity) <= Date.now()) return await reply.code(401).send({ message: 'session expired' })
      })
    }
  })
  return { ...fixture, banned, teams, sessions, hold }
}

interface ChannelsOut { stream: string, payload: Record<string, unknown> }

function isChannels (frame: Frame): boolean {
  return (frame as unknown as ChannelsOut).payload !== undefined
}

/** Subscribes over channels-api and waits for the answer. */
async function channelsSubscribe (client: TestClient, requestId: string, payload: Record<string, unknown>): Promise<ChannelsOut> {
  const answer = client.next((frame) => isChannels(frame) && (frame as unknown as ChannelsOut).payload.request_id === requestId)
  client.send({ stream: 'tasks', payload: { action: 'subscribe', request_id: requestId, ...payload } })
  return await answer as unknown as ChannelsOut
}

/** The channels-api events a client got (not answers). */
function channelsEvents (client: TestClient): Array<Record<string, unknown>> {
  return client.frames.filter((frame) => isChannels(frame) && !('response_status' in (frame as unknown as ChannelsOut).payload))
    .map((frame) => (frame as unknown as ChannelsOut).payload)
}

/** The error frames a client got, leaving out the answers to flush()'s probe. */
function errors (client: TestClient): Frame[] {
  return client.frames.filter((frame) => frame.type === 'error' && !String(frame.id).startsWith('__flush'))
}

/** Channels-api answers with a status other than 200. */
function refusals (client: TestClient): Array<Record<string, unknown>> {
  return client.frames.map((frame) => (frame as unknown as ChannelsOut).payload).filter((payload) => payload !== undefined && payload.response_status !== undefined && payload.response_status !== 200)
}

/** Native frames sorted by id: checks run concurrently, so subscriptions are ended or moved in any order. */
function byId (frames: Frame[]): Frame[] {
  return [...frames].sort((a, b) => String(a.id).localeCompare(String(b.id)))
}

/** Frames after `index`, leaving out the answers to flush()'s probe. */
function after (client: TestClient, index: number): Frame[] {
  return client.frames.slice(index + 1).filter((frame) => !(frame.type === 'error' && String(frame.id).startsWith('__flush')))
}

/** Native list + retrieve and channels-api create + update(pk) subscriptions for one client. */
async function subscribeAll (t: Test, client: TestClient, pk: number): Promise<void> {
  t.match(await client.subscribe({ id: 'list', path: '/tasks', snapshot: true }), { type: 'subscribed' })
  t.match(await client.subscribe({ id: 'one', path: `/tasks/${pk}` }), { type: 'subscribed' })
  t.match((await channelsSubscribe(client, 'c', { data: { action: 'create' } })).payload, { response_status: 200 })
  t.match((await channelsSubscribe(client, 'u', { pk, data: { action: 'update' } })).payload, { response_status: 200 })
}

/** The clock for a test: setTimeout and Date only, so I/O, setImmediate and the model queues run as usual. */
function useClock (t: Test): Clock {
  const clock = FakeTimers.install({ toFake: ['setTimeout', 'clearTimeout', 'Date'], now: Date.now() })
  t.teardown(() => { clock.uninstall() })
  return clock
}

t.test("reauthorize() ends a banned user's subscriptions, native and channels-api, and nothing follows", async (t) => {
  const { app, db, table, user, flush, banned } = await revocable(t)
  await db(table).insert([{ title: 'a', owner_id: 10 }, { title: 'b', owner_id: 10 }])
  const alice = await user(1)
  const bob = await user(2)
  await subscribeAll(t, alice, 1)
  await subscribeAll(t, bob, 1)
  t.equal(app.realtime.stats().subscriptions, 8)

  banned.add(1)
  const summary = await app.realtime.reauthorize()
  t.same(summary, { checked: 8, ended: 4, moved: 0 })
  t.equal(app.realtime.stats().subscriptions, 4, "alice's subscriptions are gone from the manager")
  await flush() // the frames sent before it have arrived

  const message = 'user 1 is banned'
  t.same(byId(errors(alice)), [
    { type: 'error', id: 'list', code: 403, message },
    { type: 'error', id: 'one', code: 403, message }
  ], 'each native subscription gets an error with the route\'s status and message')
  t.same(refusals(alice).sort((a, b) => JSON.stringify(a.data).localeCompare(JSON.stringify(b.data))), [
    { action: 'subscribe', data: { action: 'create' }, errors: [message], response_status: 403, request_id: null },
    { action: 'subscribe', data: { action: 'update', pk: 1 }, errors: [message], response_status: 403, request_id: null }
  ], 'each channels-api subscription gets a refused subscribe answer')
  t.same([errors(bob), refusals(bob)], [[], []], 'bob was refused nothing')

  const last = alice.frames.length - 1
  await db(table).insert({ title: 'c', owner_id: 10 })
  await db(table).where({ id: 1 }).update({ title: 'a2' })
  await flush()
  t.same(told(bob, 'list'), [['CREATED', task(3, 'c', 10)], ['UPDATED', task(1, 'a2', 10)]], 'bob still gets the changes')
  t.same(told(bob, 'one'), [['UPDATED', task(1, 'a2', 10)]])
  t.same(channelsEvents(bob).map((event) => [event.action, event.pk]), [['create', 3], ['update', 1]])
  t.same(after(alice, last), [], 'alice gets nothing after her errors')

  // the ids are free again, and the route keeps refusing
  t.match(await alice.subscribe({ id: 'list', path: '/tasks' }), { type: 'error', id: 'list', code: 403, message })
  t.match((await channelsSubscribe(alice, 'again', { data: { action: 'create' } })).payload, { response_status: 403, errors: [message] })
  t.same(await app.realtime.reauthorize(), { checked: 4, ended: 0, moved: 0 }, 'a second run keeps what still passes')
})

t.test('match selects the subscriptions to check, from a read-only description', async (t) => {
  const { app, db, table, user, flush, banned } = await revocable(t)
  await db(table).insert({ title: 'a', owner_id: 10 })
  const alice = await user(1)
  const bob = await user(2)
  await subscribeAll(t, alice, 1)
  await subscribeAll(t, bob, 1)
  banned.add(1)
  banned.add(2)

  const seen: RealtimeSubscriptionInfo[] = []
  const onlyBob = (subscription: RealtimeSubscriptionInfo): boolean => {
    seen.push(subscription)
    return subscription.headers.authorization === 'Bearer 2'
  }
  t.same(await app.realtime.reauthorize(onlyBob), { checked: 4, ended: 4, moved: 0 })
  await flush()
  t.equal(seen.length, 8, 'match saw every subscription')
  t.equal(errors(bob).length, 2)
  t.equal(errors(alice).length, 0, 'alice was not checked')

  const list = seen.find((info) => info.id === 'list' && info.headers.authorization === 'Bearer 1') as RealtimeSubscriptionInfo
  t.match(list, { id: 'list', protocol: 'native', model: table, route: '/tasks', url: '/tasks', channels: undefined })
  t.ok('remoteAddress' in list, 'the peer address (none for injectWS sockets)')
  const one = seen.find((info) => info.id === 'one' && info.headers.authorization === 'Bearer 1') as RealtimeSubscriptionInfo
  t.match(one, { protocol: 'native', route: '/tasks/:id', url: '/tasks/1' })
  const update = seen.find((info) => info.protocol === 'channels' && info.channels?.action === 'update' && info.headers.authorization === 'Bearer 1') as RealtimeSubscriptionInfo
  t.match(update, { id: /^channels:\d+$/, model: table, route: '/tasks/:id', url: '/tasks/1', channels: { stream: 'tasks', action: 'update', pk: 1 } })
  t.notOk('x-rest-live-seal' in update.headers, "the plugin's own headers are not shown")
  t.ok(Object.isFrozen(update) && Object.isFrozen(update.headers) && Object.isFrozen(update.channels), 'the description is read-only')

  // alice keeps streaming until she is checked
  await db(table).where({ id: 1 }).update({ title: 'a2' })
  await flush()
  t.same(told(alice, 'list'), [['UPDATED', task(1, 'a2', 10)]])
  t.same(await app.realtime.reauthorize((subscription) => subscription.headers.authorization === 'Bearer 1'), { checked: 4, ended: 4, moved: 0 })
  t.equal(app.realtime.stats().subscriptions, 0)

  await t.rejects(app.realtime.reauthorize('Bearer 1' as never), { code: 'FST_REST_LIVE_INVALID_MATCH', message: /match must be a function .*got a string/ })
})

t.test('a subscription whose checks now give another view follows it: moved and resynced', async (t) => {
  const { app, db, table, user, flush, teams } = await revocable(t)
  await db(table).insert([{ title: 'ten-a', owner_id: 10 }, { title: 'ten-b', owner_id: 10 }, { title: 'twenty', owner_id: 20 }])
  const carol = await user(3)
  const dave = await user(4)
  t.match(await carol.subscribe({ id: 'list', path: '/tasks', snapshot: true }), { data: [task(1, 'ten-a', 10), task(2, 'ten-b', 10)] })
  await carol.subscribe({ id: 'one', path: '/tasks/1' })
  await channelsSubscribe(carol, 'c', { data: { action: 'create' } })
  await dave.subscribe({ id: 'list', path: '/tasks', snapshot: true })

  // carol moves to team 20
  teams.set(3, 20)
  const summary: ReauthorizeSummary = await app.realtime.reauthorize()
  t.same(summary, { checked: 4, ended: 0, moved: 3 })
  await flush()
  t.same(byId(carol.frames.filter((frame) => frame.type === 'resync')), [
    { type: 'resync', id: 'list', data: [task(3, 'twenty', 20)] },
    { type: 'resync', id: 'one', data: null }
  ], 'her native subscriptions are resynced to the new view')
  t.same(channelsEvents(carol), [{ action: 'resync', pk: null, data: [task(3, 'twenty', 20)], model: table }], 'her channels-api one too')
  t.equal(dave.frames.filter((frame) => frame.type === 'resync').length, 0, "dave's view did not change")

  const last = carol.frames.length - 1
  await db(table).where({ id: 1 }).update({ title: 'ten-a2' })
  await db(table).insert({ title: 'twenty-b', owner_id: 20 })
  await flush()
  // the two subscriptions share a view: which of them is told first is not specified
  t.same(after(carol, last).map((frame) => JSON.stringify([frame.type, frame.id, frame.action ?? (frame as unknown as ChannelsOut).payload?.action])).sort(), [
    JSON.stringify(['broadcast', 'list', 'CREATED']),
    JSON.stringify([undefined, undefined, 'create'])
  ].sort(), "team 10's change is not sent to her; team 20's is")
  t.same(told(dave, 'list'), [['UPDATED', task(1, 'ten-a2', 10)]])
  const rest = await app.inject({ method: 'GET', url: '/tasks', headers: { authorization: 'Bearer 3' } })
  t.same(replayList(carol.frames, 'list'), rest.json(), 'her view is what REST gives her now')
  t.equal(app.realtime.stats().subscriptions, 4)
})

t.test('a new view that cannot be read ends the subscription (500) rather than stream the old one', async (t) => {
  const { app, db, table, user, flush, teams } = await revocable(t)
  await db(table).insert({ title: 'ten', owner_id: 10 })
  const carol = await user(3)
  await carol.subscribe({ id: 'list', path: '/tasks' })
  // the queryset's binding changes, but the table it reads is gone for the new team's query only
  teams.set(3, 30)
  const original = db.client.query.bind(db.client) as (...args: unknown[]) => Promise<unknown>
  db.client.query = async (connection: unknown, query: { bindings?: unknown[] }) => {
    if (query.bindings?.includes(30) === true) throw new Error('relation is unreadable')
    return await original(connection, query)
  }
  t.teardown(() => { db.client.query = original })
  t.same(await app.realtime.reauthorize(), { checked: 1, ended: 1, moved: 0 })
  await flush()
  t.same(errors(carol).at(0), { type: 'error', id: 'list', code: 500, message: 'internal error' })
  const last = carol.frames.length - 1
  await db(table).where({ id: 1 }).update({ title: 'ten2' })
  await flush()
  t.same(after(carol, last), [])
  t.equal(app.realtime.stats().subscriptions, 0)
})

t.test('reauthorizeEvery re-checks every subscription periodically; runs never pile up', async (t) => {
  const clock = useClock(t)
  const { app, db, table, user, flush, banned, hold } = await revocable(t, () => ({ reauthorizeEvery: 60_000 }))
  await db(table).insert({ title: 'a', owner_id: 10 })
  const alice = await user(1)
  const bob = await user(2)
  await alice.subscribe({ id: 'list', path: '/tasks', snapshot: true })
  await bob.subscribe({ id: 'list', path: '/tasks', snapshot: true })
  await channelsSubscribe(alice, 'c', { data: { action: 'update' } })

  banned.add(1)
  await db(table).where({ id: 1 }).update({ title: 'a2' })
  await flush()
  t.same(told(alice, 'list'), [['UPDATED', task(1, 'a2', 10)]], 'until the next run, a banned user still streams')

  await clock.tickAsync(60_000)
  t.match(await alice.next((frame) => frame.type === 'error'), { id: 'list', code: 403, message: 'user 1 is banned' })
  t.match(await alice.next((frame) => isChannels(frame) && (frame as unknown as ChannelsOut).payload.response_status === 403), { payload: { data: { action: 'update' } } })
  await app.realtime.settled()
  const last = alice.frames.length - 1
  await db(table).where({ id: 1 }).update({ title: 'a3' })
  await flush()
  t.same(told(bob, 'list').at(-1), ['UPDATED', task(1, 'a3', 10)], 'bob still streams')
  t.same(after(alice, last), [], 'alice gets nothing after her errors')

  // a run slower than the interval: the next one starts an interval after it ends
  let release: () => void = () => {}
  const entered = new Promise<void>((resolve) => { hold.entered = resolve })
  hold.gate = new Promise((resolve) => { release = resolve })
  hold.calls = 0
  await clock.tickAsync(60_000)
  await entered
  await clock.tickAsync(5 * 60_000)
  t.equal(hold.calls, 1, "one check of bob's subscription is running")
  hold.gate = undefined
  release()
  await app.realtime.settled()
  t.equal(hold.calls, 1, 'no run was started while it ran, so none was waiting behind it')
  await clock.tickAsync(60_000)
  await app.realtime.settled()
  t.equal(hold.calls, 2, 'the next run came an interval after')
  t.equal(app.realtime.stats().subscriptions, 1)
})

t.test('expiresAt: at expiry the checks run again; refused ends, a later expiry goes on', async (t) => {
  const clock = useClock(t)
  const start = Date.now()
  const { app, db, table, user, flush, sessions } = await revocable(t, (sessions) => ({
    expiresAt: (request: FastifyRequest) => sessions.get(request.userId as number)
  }))
  await db(table).insert({ title: 'a', owner_id: 10 })
  sessions.set(1, start + 60_000)
  sessions.set(2, start + 60_000)
  const alice = await user(1)
  const bob = await user(2)
  await alice.subscribe({ id: 'list', path: '/tasks' })
  await bob.subscribe({ id: 'list', path: '/tasks' })
  await channelsSubscribe(alice, 'c', { data: { action: 'create' } })
  await channelsSubscribe(bob, 'c', { data: { action: 'create' } })

  sessions.set(2, start + 120_000) // bob's session was extended meanwhile (a sliding session)
  await clock.tickAsync(59_999)
  await app.realtime.settled()
  t.equal(errors(alice).length, 0, 'nothing is checked before the expiry')
  await clock.tickAsync(1)
  t.same(await alice.next((frame) => frame.type === 'error'), { type: 'error', id: 'list', code: 401, message: 'session expired' }, "at expiry, the route's refusal ends it")
  t.match(await alice.next((frame) => isChannels(frame) && (frame as unknown as ChannelsOut).payload.response_status === 401), {
    stream: 'tasks', payload: { action: 'subscribe', data: { action: 'create' }, errors: ['session expired'], request_id: null }
  })
  await app.realtime.settled()
  const last = alice.frames.length - 1
  await db(table).insert({ title: 'b', owner_id: 10 })
  await flush()
  t.same(told(bob, 'list'), [['CREATED', task(2, 'b', 10)]], 'bob, re-authorised with a later expiry, goes on')
  t.same(channelsEvents(bob).map((event) => event.action), ['create'])
  t.same(after(alice, last), [], 'alice gets nothing after her errors')
  t.equal(errors(bob).length, 0)

  await clock.tickAsync(60_000)
  t.same(await bob.next((frame) => frame.type === 'error'), { type: 'error', id: 'list', code: 401, message: 'session expired' }, 'and ends at his new expiry')
  await app.realtime.settled()
  t.equal(app.realtime.stats().subscriptions, 0)
  t.match(await bob.subscribe({ id: 'again', path: '/tasks' }), { type: 'error', code: 401 }, 'expired credentials subscribe to nothing')
})

t.test('expiresAt per route; a time already past refuses; a route that accepts expired credentials is ended with 401', async (t) => {
  const clock = useClock(t)
  const start = Date.now()
  const db = sqlite()
  const table = uniqueName('expiring')
  await createTasksTable(db, table)
  await db(table).insert({ title: 'a', owner_id: 1 })
  let expiry: unknown = start + 1000
  const app = Fastify()
  await app.register(restLive, { knex: db, expiresAt: () => { throw new Error('the route overrides this') } })
  const queryset = (): Knex.QueryBuilder => db(table).select('id', 'title').orderBy('id')
  app.get('/tasks', { config: { realtime: { model: table, queryset, expiresAt: () => expiry as number } } }, async (request) => await app.realtime.list(request))
  app.get('/plain', { config: { realtime: { model: table, queryset } } }, async (request) => await app.realtime.list(request))
  t.teardown(async () => {
    await app.close()
    await db.destroy()
  })
  await app.ready()
  const client = await TestClient.connect(app)
  t.teardown(() => { client.close() })

  t.match(await client.subscribe({ id: 'a', path: '/tasks' }), { type: 'subscribed' }, "the route's expiresAt replaces the plugin's")
  await clock.tickAsync(1000)
  t.same(await client.next((frame) => frame.type === 'error'), {
    type: 'error', id: 'a', code: 401, message: `credentials expired at ${new Date(start + 1000).toISOString()}; reconnect with fresh credentials`
  }, 'the route still accepts, but the credentials expired: ended')
  await app.realtime.settled()
  const last = client.frames.length - 1
  await db(table).insert({ title: 'b', owner_id: 1 })
  await client.flush(app)
  t.same(after(client, last), [])

  t.match(await client.subscribe({ id: 'b', path: '/tasks' }), { type: 'error', code: 401, message: /^credentials expired at / }, 'expired credentials subscribe to nothing')
  expiry = 'soon'
  t.match(await client.subscribe({ id: 'c', path: '/tasks' }), { type: 'error', code: 500, message: /expiresAt\(\) for \/tasks returned "soon"; expected a Date/ })
  t.match(await client.subscribe({ id: 'd', path: '/plain' }), { type: 'error', code: 500, message: 'internal error' }, 'a throwing expiresAt fails the subscribe')
  expiry = null
  t.match(await client.subscribe({ id: 'e', path: '/tasks' }), { type: 'subscribed' })
  expiry = new Date(start + 5000)
  t.match(await client.subscribe({ id: 'f', path: '/tasks' }), { type: 'subscribed' }, 'a Date works too')
  await clock.tickAsync(4000)
  t.match(await client.next((frame) => frame.type === 'error'), { id: 'f', code: 401 })
  await clock.tickAsync(30 * 24 * 3600_000)
  await app.realtime.settled()
  t.equal(app.realtime.stats().subscriptions, 1, 'a subscription with no expiry stays')
})
