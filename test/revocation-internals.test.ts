/**
 * The revocation pieces on their own, for orders of events a socket test cannot
 * force: a subscription ended or resynced while it moves, a check answered
 * after its subscription ended, a periodic run still going at close.
 */
import FakeTimers from '@sinonjs/fake-timers'
import Fastify, { type FastifyRequest } from 'fastify'
import t from 'tap'
import { CommitClock } from '../lib/capture/commit-clock.js'
import { RouteRegistry, type RealtimeRoute } from '../lib/registry/route-registry.js'
import { UnkeyedRows } from '../lib/registry/unkeyed-rows.js'
import { createCounters } from '../lib/stats.js'
import type { Authorization, Requester } from '../lib/subscriptions/authorizer.js'
import { expiryOf, MAX_TIMEOUT_MS } from '../lib/subscriptions/expiry.js'
import { SubscriptionManager } from '../lib/subscriptions/manager.js'
import { Revoker, type Grant, type RevokerDeps } from '../lib/subscriptions/revocation.js'
import { Subscription } from '../lib/subscriptions/subscription.js'
import { ViewSource, type SerializedRows } from '../lib/subscriptions/view.js'
import { NativeSubscriber } from '../lib/ws/frames-out.js'

const route: RealtimeRoute = { id: 1, url: '/t', model: 'things', kind: 'list', lookup: 'id', pk: 'id', params: [], queryset: undefined, response: undefined, serialize: undefined }

/** A view whose rows the test sets, and whose reads it can hold. */
class FakeView extends ViewSource {
  gate: Promise<void> | undefined
  constructor (key: string, public rows: SerializedRows) {
    super(key, route)
  }

  async readAll (): Promise<SerializedRows> {
    await this.gate
    return this.rows
  }

  async readChanged (): Promise<undefined> {
    return undefined
  }
}

function managerWithBus (): { manager: SubscriptionManager, interest: () => number } {
  const registry = new RouteRegistry()
  const log = Fastify().log
  const manager = new SubscriptionManager(registry, log, createCounters(), new CommitClock(), new UnkeyedRows(log, registry, 'sqlite'))
  let follows = 0
  manager.attach({
    publish: async () => {},
    follow: async () => { follows++ },
    unfollow: () => { follows-- },
    close: async () => {}
  })
  return { manager, interest: () => follows }
}

/** A native subscriber that keeps the frames it is sent. */
function recorder (): NativeSubscriber & { frames: string[] } {
  const frames: string[] = []
  return Object.assign(new NativeSubscriber({ send: (frame) => { frames.push(frame); return true } }), { frames })
}

t.test('manager.move: the subscription leaves its view at once and gets a resync of the new one', async (t) => {
  const { manager, interest } = managerWithBus()
  const sink = recorder()
  const old = new FakeView('old', new Map([['1', '{"id":1}']]))
  const subscription = await manager.subscribe({ id: 's', subscriber: sink, view: old, snapshot: false })
  const other = await manager.subscribe({ id: 'o', subscriber: recorder(), view: new FakeView('old', new Map()), snapshot: false })
  t.equal(other.view, old, 'an identical view is shared')

  await manager.move(subscription, new FakeView('new', new Map([['2', '{"id":2}']])))
  t.same(sink.frames, ['{"type":"subscribed","id":"s"}', '{"type":"resync","id":"s","data":[{"id":2}]}'])
  t.equal(subscription.view.key, 'new')
  t.notOk(old.subscriptions.has(subscription))
  t.same(manager.describe(), [{ model: 'things', route: '/t', kind: 'list', views: 2, subscriptions: 2 }])

  // back to a view that is already followed: it joins that one
  await manager.move(subscription, new FakeView('old', new Map()))
  t.equal(subscription.view, old)
  t.same(manager.describe(), [{ model: 'things', route: '/t', kind: 'list', views: 1, subscriptions: 2 }], 'the view it left, now empty, is forgotten')
  manager.unsubscribe(subscription)
  manager.unsubscribe(other)
  t.equal(interest(), 0)
})

t.test('manager.move: ended before or while its new view is read, it is sent nothing', async (t) => {
  const { manager, interest } = managerWithBus()
  const sink = recorder()
  const subscription = await manager.subscribe({ id: 's', subscriber: sink, view: new FakeView('old', new Map()), snapshot: false })
  const moving = manager.move(subscription, new FakeView('new', new Map([['2', '{"id":2}']])))
  manager.unsubscribe(subscription) // while it is in no view
  await moving
  t.same(sink.frames, ['{"type":"subscribed","id":"s"}'])
  t.equal(manager.subscriptionCount, 0)
  t.equal(interest(), 0, 'unfollowed once')

  const held = await manager.subscribe({ id: 'h', subscriber: sink, view: new FakeView('old', new Map()), snapshot: false })
  const slow = new FakeView('slow', new Map())
  let release: () => void = () => {}
  slow.gate = new Promise((resolve) => { release = resolve })
  const move = manager.move(held, slow)
  await new Promise((resolve) => setImmediate(resolve)) // the queue started reading
  manager.unsubscribe(held)
  release()
  await move
  t.same(sink.frames.slice(1), ['{"type":"subscribed","id":"h"}'], 'nothing after it ended')
  t.same(manager.describe(), [])
})

t.test('manager.resync: a subscription that ended or is moving is not resynced with its old view', async (t) => {
  const { manager } = managerWithBus()
  const sink = recorder()
  const a = await manager.subscribe({ id: 'a', subscriber: sink, view: new FakeView('old', new Map([['1', '{"id":1}']])), snapshot: false })
  manager.resync(a)
  manager.unsubscribe(a)
  const b = await manager.subscribe({ id: 'b', subscriber: sink, view: new FakeView('old', new Map([['1', '{"id":1}']])), snapshot: false })
  manager.resync(b) // queued before the move below: it runs first
  await manager.move(b, new FakeView('new', new Map([['2', '{"id":2}']])))
  await manager.idle()
  t.same(sink.frames, [
    '{"type":"subscribed","id":"a"}',
    '{"type":"subscribed","id":"b"}',
    '{"type":"resync","id":"b","data":[{"id":2}]}'
  ])
  manager.resync(b)
  await manager.idle()
  t.equal(sink.frames.at(-1), '{"type":"resync","id":"b","data":[{"id":2}]}', 'a second resync of a live one is sent')
  t.equal(b.state?.subscriptions.size, 1, 'and leaves it in one known state')
})

/** A revoker over stub authorizer and manager; `answer` decides each check. */
function stubRevoker (every: number | undefined, answer: (subscription: Subscription) => Promise<Partial<Authorization>>): { revoker: Revoker, ended: Array<[Subscription, unknown]>, moved: Subscription[], authorized: number } {
  const ended: Array<[Subscription, unknown]> = []
  const moved: Subscription[] = []
  const state = { revoker: undefined as unknown as Revoker, ended, moved, authorized: 0 }
  const bySubscription = new Map<string, Subscription>()
  const deps: RevokerDeps = {
    authorizer: {
      authorize: async (url) => {
        state.authorized++
        return await answer(bySubscription.get(url) as Subscription) as Authorization
      }
    },
    manager: {
      unsubscribe: (subscription) => {
        subscription.closed = true
        state.revoker.ended(subscription)
      },
      move: async (subscription) => { moved.push(subscription) }
    },
    log: Fastify().log,
    view: () => new FakeView('moved', new Map()),
    every
  }
  state.revoker = new Revoker(deps)
  const originalStarted = state.revoker.started.bind(state.revoker)
  state.revoker.started = (subscription) => {
    bySubscription.set(subscription.grant?.url as string, subscription)
    originalStarted(subscription)
  }
  return state
}

const requester: Requester = { headers: { authorization: 'Bearer 1' }, remoteAddress: undefined }

function grantFor (revoker: Revoker, url: string, expiresAt: number | undefined, generation = revoker.generation, end: Grant['end'] = () => {}): Grant {
  const authorization = { kind: 'refetch', route, url, key: 'k', lookupValue: undefined, expiresAt } as Authorization
  return revoker.grant({ id: url, protocol: 'native', url, socket: requester, requester, authorization, generation, end })
}

function start (revoker: Revoker, url: string, expiresAt?: number, generation?: number): Subscription {
  const subscription = new Subscription(url, recorder(), new FakeView('k', new Map()), grantFor(revoker, url, expiresAt, generation))
  revoker.started(subscription)
  return subscription
}

t.test('Revoker: a check answered after its subscription ended changes nothing', async (t) => {
  const state = stubRevoker(undefined, async (subscription) => {
    subscription.closed = true // the client left while the route ran
    if (subscription.id === '/refused') throw Object.assign(new Error('no'), { statusCode: 403 })
    return { key: 'other' }
  })
  start(state.revoker, '/accepted')
  start(state.revoker, '/refused')
  t.same(await state.revoker.reauthorize(), { checked: 2, ended: 0, moved: 0 })
  t.same(state.moved, [])
})

t.test('Revoker: a subscription made without a grant is not tracked', async (t) => {
  const state = stubRevoker(undefined, async () => ({ key: 'k' }))
  state.revoker.started(new Subscription('x', recorder(), new FakeView('k', new Map())))
  t.same(await state.revoker.reauthorize(), { checked: 0, ended: 0, moved: 0 })
})

t.test('Revoker: a subscription whose first check began before a run is checked again when it starts', async (t) => {
  const state = stubRevoker(undefined, async () => { throw Object.assign(new Error('banned'), { statusCode: 403 }) })
  const generation = state.revoker.generation
  await state.revoker.reauthorize() // e.g. a ban, while the subscription below was being authorised
  const subscription = start(state.revoker, '/late', undefined, generation)
  await state.revoker.idle()
  t.ok(subscription.closed, 'ended')
  t.equal(state.authorized, 1)
  start(state.revoker, '/fresh')
  await state.revoker.idle()
  t.equal(state.authorized, 1, 'one authorised after the run is not checked again')
})

t.test('Revoker: an expiry beyond what setTimeout can wait is waited for in steps', async (t) => {
  const clock = FakeTimers.install({ toFake: ['setTimeout', 'clearTimeout', 'Date'], now: Date.now() })
  t.teardown(() => { clock.uninstall() })
  const state = stubRevoker(undefined, async () => ({ key: 'k', expiresAt: undefined }))
  start(state.revoker, '/long', Date.now() + MAX_TIMEOUT_MS + 1000)
  await clock.tickAsync(MAX_TIMEOUT_MS)
  t.equal(state.authorized, 0, 'not yet')
  await clock.tickAsync(1000)
  await state.revoker.idle()
  t.equal(state.authorized, 1, 'checked at its expiry')
  t.equal(clock.countTimers(), 0, 'accepted with no expiry: no timer left')
})

t.test('Revoker: close() stops the periodic run and every expiry timer, even with a run in flight', async (t) => {
  const clock = FakeTimers.install({ toFake: ['setTimeout', 'clearTimeout', 'Date'], now: Date.now() })
  t.teardown(() => { clock.uninstall() })
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  const state = stubRevoker(1000, async () => {
    await gate
    return { key: 'k', expiresAt: Date.now() + 60_000 }
  })
  start(state.revoker, '/a', Date.now() + 60_000)
  t.equal(clock.countTimers(), 2, 'the periodic timer and one expiry')
  await clock.tickAsync(1000)
  t.equal(state.authorized, 1, 'a run started')
  state.revoker.close()
  t.equal(clock.countTimers(), 0)
  release()
  await state.revoker.idle()
  await clock.tickAsync(0)
  t.equal(clock.countTimers(), 0, 'the run that ended after close armed nothing: no expiry, no next run')
  await clock.tickAsync(10_000)
  t.equal(state.authorized, 1)
})

t.test('expiryOf: what an expiresAt hook may answer', async (t) => {
  const request = {} as FastifyRequest
  const now = Date.now()
  t.equal(await expiryOf(undefined, request, '/r'), undefined)
  t.equal(await expiryOf(() => undefined, request, '/r'), undefined)
  t.equal(await expiryOf(() => null, request, '/r'), undefined)
  t.equal(await expiryOf(() => now + 1000, request, '/r'), now + 1000)
  t.equal(await expiryOf(async () => new Date(now + 2000), request, '/r'), now + 2000, 'a Date, or a promise of one')
  const invalid: Array<[unknown, string]> = [
    [NaN, 'NaN'],
    [Infinity, 'Infinity'],
    [8.64e15 + 1, '8640000000000001'],
    [new Date('nope'), 'an invalid Date'],
    ['2030-01-01', '"2030-01-01"'],
    [{ exp: 1 }, 'an object'],
    [true, 'a boolean']
  ]
  for (const [value, shown] of invalid) {
    await t.rejects(expiryOf(() => value as number, request, '/r'), { code: 'FST_REST_LIVE_INVALID_EXPIRY', message: `fastify-rest-live: expiresAt() for /r returned ${shown}; expected a Date, milliseconds since the epoch, or undefined` })
  }
  await t.rejects(expiryOf(() => now - 1, request, '/r'), { code: 'FST_REST_LIVE_EXPIRED', statusCode: 401, message: `credentials expired at ${new Date(now - 1).toISOString()}; reconnect with fresh credentials` })
})
