/**
 * The Redis bus on its own (no Fastify): envelopes and serials,
 * reference-counted interest, gaps, reconnects, dropped publishes and
 * startup failures, against the machine's real Redis.
 */
import FakeTimers from '@sinonjs/fake-timers'
import t from 'tap'
import { Cluster, Redis } from 'ioredis'
import type { BusListener, ChangeEvent } from '../lib/bus/bus.js'
import { createRedisBus, type RedisBus } from '../lib/bus/redis-bus.js'
import { clusterAddress } from '../lib/bus/redis-connections.js'
import { ChannelInterest } from '../lib/bus/redis-interest.js'
import { resolveOptions } from '../lib/options.js'
import { decodeEnvelope, InboundSerials, OutboundSerials } from '../lib/bus/redis-serial.js'
import { uniqueName } from './helpers/db.js'
import {
  CLUSTER_SKIP, REDIS_URL, RedisProxy, clusterNodes, clusterOption, killClients, recordingLogger, redisAdmin, redisAvailable,
  redisClient, redisClusterAvailable, silentServer, subscriberCount
} from './helpers/redis.js'
import { eventually } from './helpers/eventually.js'

interface Heard { events: ChangeEvent[], gaps: Array<string[] | null> }

function recorder (): BusListener & Heard {
  const heard: Heard = { events: [], gaps: [] }
  return {
    ...heard,
    event: (event) => { heard.events.push(event) },
    gap: (models) => { heard.gaps.push(models) }
  }
}

const change = (model: string, id: number): ChangeEvent => ({ model, op: 'update', rows: [{ id }] })

t.test('envelopes', async (t) => {
  t.equal(decodeEnvelope('not json'), undefined)
  t.equal(decodeEnvelope('null'), undefined)
  t.equal(decodeEnvelope('42'), undefined)
  t.equal(decodeEnvelope('{"s":1}'), undefined, 'no origin')
  t.equal(decodeEnvelope('{"o":"a","s":1.5}'), undefined, 'serial not an integer')
  t.equal(decodeEnvelope('{"o":"a","s":1,"e":null}'), undefined)
  t.equal(decodeEnvelope('{"o":"a","s":1,"e":{"op":"insert"}}'), undefined, 'event without a model')
  t.same(decodeEnvelope('{"o":"a","s":2,"d":1}'), { o: 'a', s: 2, d: 1 })
  t.same(decodeEnvelope('{"o":"a","s":1,"e":{"model":"m","op":"insert","rows":null}}'), { o: 'a', s: 1, e: { model: 'm', op: 'insert', rows: null } })

  const out = new OutboundSerials()
  t.same(JSON.parse(out.encode('n', 'c', change('m', 1))), { o: 'n', s: 1, e: change('m', 1) })
  t.same(JSON.parse(out.encode('n', 'other')), { o: 'n', s: 1 }, 'one counter per channel')
  out.dropped('c')
  t.same(out.pendingDrops(), ['c'])
  t.throws(() => out.encode('n', 'c', { model: 'm', op: 'insert', rows: [{ id: 1n }] }), 'a BigInt does not serialize')
  t.same(out.pendingDrops(), ['c'], 'a failed encode consumes nothing')
  t.same(JSON.parse(out.encode('n', 'c')), { o: 'n', s: 2, d: 1 }, 'the next message owns up to the drop')
  t.same(out.pendingDrops(), [])
  t.equal(out.droppedCount, 1)
  const trusted = out.encode('n', 'c', { ...change('m', 1), trustedSince: 7 })
  t.notMatch(trusted, /trustedSince/, "a node's trust in its own capture never goes on the wire")
  t.same(JSON.parse(trusted), { o: 'n', s: 3, e: change('m', 1) })
  t.same(decodeEnvelope('{"o":"a","s":1,"e":{"model":"m","op":"update","rows":[{"id":1}],"trustedSince":99}}'), { o: 'a', s: 1, e: change('m', 1) },
    'nor is a sender believed: a forged trust mark is dropped on arrival')
  t.notOk('trustedSince' in (decodeEnvelope('{"o":"a","s":1,"e":{"model":"m","op":"update","rows":[],"trustedSince":99}}')?.e ?? {}))

  const inbound = new InboundSerials()
  t.equal(inbound.check('c', 'a', 5), 'first', 'an unknown origin is not a gap')
  t.equal(inbound.check('c', 'a', 6), 'next')
  t.equal(inbound.check('c', 'a', 6), 'duplicate')
  t.equal(inbound.check('c', 'a', 8), 'gap')
  t.equal(inbound.check('c', 'b', 1), 'first')
  t.equal(inbound.check('d', 'a', 1), 'first', 'serials are per channel')
  inbound.forget('c')
  t.equal(inbound.check('c', 'a', 20), 'first')
  inbound.clear()
  t.equal(inbound.check('d', 'a', 9), 'first')
})

t.test('interest is reference-counted and given back when subscribing fails', async (t) => {
  const calls: string[] = []
  let fail = false
  const interest = new ChannelInterest({
    subscribe: async (channel) => {
      calls.push(`sub ${channel}`)
      if (fail) throw new Error('down')
    },
    unsubscribe: (channel) => { calls.push(`unsub ${channel}`) }
  })
  await Promise.all([interest.follow('p:m', 'm'), interest.follow('p:m', 'm')])
  t.same(calls, ['sub p:m'], 'one SUBSCRIBE for two followers')
  t.same(interest.models(), ['m'])
  interest.unfollow('p:m')
  t.equal(interest.modelOf('p:m'), 'm')
  interest.unfollow('p:m')
  interest.unfollow('p:m')
  t.same(calls, ['sub p:m', 'unsub p:m'], 'UNSUBSCRIBE when the last one leaves')
  t.equal(interest.modelOf('p:m'), undefined)
  fail = true
  await t.rejects(interest.follow('p:x', 'x'), /down/)
  t.same(interest.channels(), [], 'a failed follow leaves no interest')
})

t.test('the redis option for a cluster is checked up front, naming the field', async (t) => {
  const knex = Object.assign(() => {}, { client: { query: () => {} } })
  const mistake = (redis: unknown): string => {
    try {
      resolveOptions({ knex, redis })
    } catch (err) {
      t.equal((err as { code?: string }).code, 'FST_REST_LIVE_INVALID_OPTION')
      return (err as Error).message
    }
    return 'accepted'
  }
  t.equal(mistake({ cluster: [] }), "fastify-rest-live: option 'redis.cluster' expected array length to be greater or equal to 1, got an array")
  t.equal(mistake({ cluster: 'redis://127.0.0.1:7101' }), "fastify-rest-live: option 'redis.cluster' expected array, got \"redis://127.0.0.1:7101\"")
  t.equal(mistake({ cluster: [{ host: '127.0.0.1', port: '7101' }] }),
    "fastify-rest-live: option 'redis.cluster.0' must be a \"host:port\" or redis:// URL string, a port number, or { host, port }, got an object")
  t.equal(mistake({ cluster: [7101, null] }), "fastify-rest-live: option 'redis.cluster.1' must be a \"host:port\" or redis:// URL string, a port number, or { host, port }, got null")
  t.equal(mistake({ cluster: [7101], clusterOptions: 5 }), "fastify-rest-live: option 'redis.clusterOptions' expected object, got a number")
  t.equal(mistake({ cluster: [7101], sharded: true }), "fastify-rest-live: option 'redis.sharded' unexpected property, got a boolean")
  for (const redis of [
    { cluster: [7101, '127.0.0.1:7102', 'redis://127.0.0.1:7103', { host: '127.0.0.1', port: 7104 }], clusterOptions: { redisOptions: { password: 'x' } } },
    { host: '127.0.0.1', port: 6379 },
    new Cluster([7101], { lazyConnect: true })
  ]) {
    t.equal(mistake(redis), 'accepted', 'a valid cluster option, ioredis options, a Cluster instance')
  }
})

t.test("a cluster's address in messages: its startup nodes, without credentials", async (t) => {
  t.equal(clusterAddress([7101, 'redis://user:secret@10.0.0.1:7102', 'rediss://10.0.0.2:7103', '10.0.0.3:7104', { host: '10.0.0.4', port: 7105 }, { port: 7106 }, { host: '10.0.0.5' }]),
    'cluster 127.0.0.1:7101,10.0.0.1:7102,10.0.0.2:7103,10.0.0.3:7104,10.0.0.4:7105,127.0.0.1:7106,10.0.0.5:6379')
})

const redisUp = await redisAvailable()

t.test('against Redis', { skip: redisUp ? false : 'Redis is not running' }, async (t) => {
  const admin = redisClient()
  t.teardown(async () => { await admin.quit() })

  async function node (t: { teardown: (fn: () => Promise<void>) => void }, prefix: string, redis: unknown = REDIS_URL): Promise<{ bus: RedisBus } & ReturnType<typeof recorder> & ReturnType<typeof recordingLogger>> {
    const listener = recorder()
    const logger = recordingLogger()
    const bus = await createRedisBus({ redis, channelPrefix: prefix, listener, log: logger.log })
    t.teardown(async () => { await bus.close() })
    return { bus, ...listener, ...logger }
  }

  t.test("a capture's trust mark reaches this node's listener only, never Redis", async (t) => {
    const prefix = uniqueName('rb')
    const a = await node(t, prefix)
    const b = await node(t, prefix)
    const raw = redisClient()
    t.teardown(async () => { await raw.quit() })
    const messages: string[] = []
    raw.on('message', (_channel: string, message: string) => { messages.push(message) })
    await raw.subscribe(`${prefix}:tasks`)
    await a.bus.follow('tasks')
    await b.bus.follow('tasks')
    await a.bus.publish({ ...change('tasks', 1), trustedSince: 5 })
    await eventually(() => b.events.length === 1 && messages.length === 1)
    t.same(a.events, [{ ...change('tasks', 1), trustedSince: 5 }], 'this node: the event as captured')
    t.same(b.events, [change('tasks', 1)], 'another node: model, op and rows')
    t.notOk('trustedSince' in (b.events[0] as object))
    t.notMatch(messages[0], /trustedSince/, 'not in the message on the channel')
  })

  t.test('events reach the nodes following their model, once, and only them', async (t) => {
    const prefix = uniqueName('rb')
    const a = await node(t, prefix)
    const b = await node(t, prefix)
    t.not(a.bus.nodeId, b.bus.nodeId)
    t.equal(await subscriberCount(admin, `${prefix}:tasks`), 0, 'nobody follows yet')
    await b.bus.follow('tasks')
    await a.bus.follow('tasks')
    await b.bus.follow('tasks')
    t.equal(await subscriberCount(admin, `${prefix}:tasks`), 2, 'one subscription per node, however many followers')
    await a.bus.publish(change('tasks', 1))
    await a.bus.publish(change('notes', 2))
    // (no order between nodes: b's own event would reach b before a's, still in flight)
    await eventually(() => b.events.length === 1)
    await b.bus.publish(change('tasks', 3))
    await eventually(() => b.events.length === 2 && a.events.length === 2)
    t.same(a.events, [change('tasks', 1), change('tasks', 3)], 'own events directly, others through Redis, each once')
    t.same(b.events, [change('tasks', 1), change('tasks', 3)], 'notes: nobody follows it')
    t.same([...a.gaps, ...b.gaps], [])

    b.bus.unfollow('tasks')
    t.equal(await subscriberCount(admin, `${prefix}:tasks`), 2, 'still one follower on b')
    b.bus.unfollow('tasks')
    await eventually(async () => await subscriberCount(admin, `${prefix}:tasks`) === 1)
    await a.bus.publish(change('tasks', 4))
    await a.bus.publish(change('tasks', 5))
    await b.bus.follow('tasks')
    await a.bus.publish(change('tasks', 6))
    await eventually(() => b.events.length === 3)
    t.same(b.events.at(-1), change('tasks', 6), 're-following starts cleanly: no gap for what it did not follow')
    t.same(b.gaps, [])
  })

  t.test('a message still in flight after unfollowing is ignored', async (t) => {
    const prefix = uniqueName('rb')
    const a = await node(t, prefix)
    const b = await node(t, prefix)
    for (let i = 0; i < 5; i++) {
      await b.bus.follow('tasks')
      const published = a.bus.publish(change('tasks', i))
      b.bus.unfollow('tasks')
      await published
      await eventually(async () => await subscriberCount(admin, `${prefix}:tasks`) === 0)
    }
    t.same(b.events, [])
  })

  t.test('holes, drop flags, duplicates and foreign messages', async (t) => {
    const prefix = uniqueName('rb')
    const b = await node(t, prefix)
    await b.bus.follow('tasks')
    const channel = `${prefix}:tasks`
    const send = async (message: unknown): Promise<void> => { await admin.publish(channel, typeof message === 'string' ? message : JSON.stringify(message)) }
    await send({ o: 'x', s: 7, e: change('tasks', 1) })
    await send({ o: 'x', s: 8, e: change('tasks', 2) })
    await send({ o: 'x', s: 8, e: change('tasks', 2) })
    await send({ o: 'x', s: 10, e: change('tasks', 3) })
    await send('garbage')
    await send({ o: 'x', s: 11, d: 1 })
    await send({ o: 'x', s: 12 })
    await send({ o: b.bus.nodeId, s: 99, e: change('tasks', 9) })
    await send({ o: 'x', s: 13, e: change('tasks', 4) })
    await eventually(() => b.events.length === 3)
    t.same(b.events, [change('tasks', 1), change('tasks', 2), change('tasks', 4)], 'duplicate, echo and bare notice not delivered')
    t.same(b.gaps, [['tasks'], ['tasks']], 'a hole and a drop flag are gaps')
    t.equal(b.messages('warn').filter((m) => /not a fastify-rest-live event/.test(m)).length, 1)
    t.equal(b.messages('warn').filter((m) => /may have been missed/.test(m)).length, 2)
  })

  t.test('rows that do not serialize are sent without rows', async (t) => {
    const prefix = uniqueName('rb')
    const a = await node(t, prefix)
    const b = await node(t, prefix)
    await b.bus.follow('tasks')
    await a.bus.publish({ model: 'tasks', op: 'insert', rows: [{ id: 10n }] })
    await eventually(() => b.events.length === 1)
    t.same(b.events, [{ model: 'tasks', op: 'insert', rows: null }])
    t.same(b.gaps, [])
    t.match(a.messages('warn'), [/could not be serialized/])
  })

  t.test('a killed subscriber connection resubscribes, then resyncs', async (t) => {
    const prefix = uniqueName('rb')
    const a = await node(t, prefix)
    const b = await node(t, prefix)
    await b.bus.follow('tasks')
    await b.bus.follow('notes')
    await a.bus.publish(change('tasks', 1))
    await eventually(() => b.events.length === 1)
    t.equal(await killClients(admin, `${prefix}:${b.bus.nodeId}:sub`), 1)
    await eventually(() => b.gaps.length === 1)
    t.same(b.gaps, [['tasks', 'notes']], 'every followed model')
    t.equal(await subscriberCount(admin, `${prefix}:tasks`), 1)
    await a.bus.publish(change('tasks', 2))
    await eventually(() => b.events.length === 2)
    t.same(b.events.at(-1), change('tasks', 2), 'live again; the new baseline is not a gap')
    t.match(b.messages('warn'), [/lost the Redis subscriber connection/])
    t.match(b.messages('info'), [/is back; resyncing/])
  })

  t.test('a node without followers resubscribes nothing after a reconnect', async (t) => {
    const prefix = uniqueName('rb')
    const b = await node(t, prefix)
    t.equal(await killClients(admin, `${prefix}:${b.bus.nodeId}:sub`), 1)
    await eventually(() => b.gaps.length === 1)
    t.same(b.gaps, [[]])
  })

  t.test('a refused re-subscription (ACL change) is an error in the log, not a silent resync', async (t) => {
    const prefix = uniqueName('rb')
    const user = uniqueName('rl_user')
    const url = new URL(REDIS_URL)
    await admin.acl('SETUSER', user, 'on', 'nopass', '~*', 'resetchannels', `&${prefix}:*`, '+@all')
    t.teardown(async () => { await admin.acl('DELUSER', user) })
    const b = await node(t, prefix, { host: url.hostname, port: Number(url.port || 6379), username: user })
    await b.bus.follow('tasks')
    // Redis drops a subscriber whose channels its user may no longer use
    await admin.acl('SETUSER', user, 'resetchannels', '&elsewhere:*')
    await eventually(() => b.messages('error').length === 1)
    t.match(b.messages('error'), [/re-subscribing after a Redis reconnect failed/])
    t.same(b.gaps, [], 'no resync claims the node is live again')
  })

  t.test('closing while the subscriber is reconnecting', async (t) => {
    const prefix = uniqueName('rb')
    const listener = recorder()
    const logger = recordingLogger()
    const bus = await createRedisBus({ redis: { host: new URL(REDIS_URL).hostname, port: Number(new URL(REDIS_URL).port || 6379) }, channelPrefix: prefix, listener, log: logger.log })
    await bus.follow('tasks')
    // ioredis waits on setTimeout before reconnecting: on this clock, only when the test says
    const clock = FakeTimers.install({ toFake: ['setTimeout', 'clearTimeout'] })
    t.teardown(() => { clock.uninstall() })
    t.equal(await killClients(admin, `${prefix}:${bus.nodeId}:sub`), 1)
    await eventually(() => logger.messages('warn').length === 1)
    t.ok(clock.countTimers() > 0, 'a reconnect is waiting')
    await bus.close()
    await bus.close()
    await bus.publish(change('tasks', 1))
    // a reconnect close() had left waiting would start now; it would re-subscribe and report a gap
    clock.runAll()
    t.same(listener.gaps, [], 'no reconnect after close')
    t.same(await admin.pubsub('CHANNELS', `${prefix}:*`), [])
  })

  t.test('Redis lost at runtime: writes go on, the missed events are repaired', async (t) => {
    const proxy = await RedisProxy.start()
    t.teardown(async () => { await proxy.cut() })
    const prefix = uniqueName('rb')
    const a = await node(t, prefix, { host: '127.0.0.1', port: proxy.port, maxRetriesPerRequest: 1 })
    const b = await node(t, prefix)
    await a.bus.follow('tasks')
    await b.bus.follow('tasks')
    await a.bus.publish(change('tasks', 1))
    await eventually(() => b.events.length === 1)

    await proxy.cut()
    // a loses Redis: its own subscribers still hear its writes; b hears nothing
    await eventually(() => a.messages('warn').some((m) => /lost the Redis subscriber/.test(m)))
    await a.bus.publish(change('tasks', 2))
    await a.bus.publish(change('tasks', 3))
    t.same(a.events.map((e) => e.rows), [[{ id: 1 }], [{ id: 2 }], [{ id: 3 }]])
    t.equal(a.bus.droppedPublishes, 2, 'after its retries, each publish is counted as dropped, not thrown')
    t.equal(a.messages('error').filter((m) => /publishing to Redis failed/.test(m)).length, 1, 'logged once per outage')
    t.ok(a.records.some((r) => r.level === 'debug'), 'reconnect errors go to debug')

    await proxy.restore()
    await eventually(() => b.gaps.length === 1 && a.gaps.length === 1)
    t.same(b.gaps, [['tasks']], 'the drop notice makes b resync')
    t.same(a.gaps, [['tasks']], 'a resyncs what it may have missed')
    t.match(a.messages('warn'), [/lost the Redis subscriber/, /Redis is back for publishing/])
    t.equal(b.events.length, 1, 'the dropped events themselves never arrive')
    await a.bus.publish(change('tasks', 4))
    await eventually(() => b.events.length === 2)
    t.same(b.gaps.length, 1, 'live again without another gap')
  })

  t.test('an ioredis instance: published on, duplicated for subscribing, never closed', async (t) => {
    const prefix = uniqueName('rb')
    const instance = new Redis(REDIS_URL, { lazyConnect: true })
    t.teardown(async () => { await instance.quit() })
    const a = await node(t, prefix, instance)
    t.equal(instance.status, 'ready', 'a lazy instance is connected')
    const b = await node(t, prefix)
    await b.bus.follow('tasks')
    await a.bus.publish(change('tasks', 1))
    await eventually(() => b.events.length === 1)
    await a.bus.close()
    t.equal(instance.status, 'ready', 'still open after close')
    t.equal(await instance.ping(), 'PONG')

    const connecting = new Redis(REDIS_URL)
    t.teardown(async () => { await connecting.quit() })
    const c = await node(t, prefix, connecting)
    await c.bus.close()
    t.equal(connecting.status, 'ready', 'a connecting instance is awaited, and left open')
  })

  t.test('publishes that fail while connected are flagged on the next message', async (t) => {
    const prefix = uniqueName('rb')
    const instance = new Redis(REDIS_URL, { enableOfflineQueue: false })
    t.teardown(() => { instance.disconnect() })
    const a = await node(t, prefix, instance)
    const b = await node(t, prefix)
    await b.bus.follow('tasks')
    instance.disconnect()
    await a.bus.publish(change('tasks', 1))
    t.equal(a.bus.droppedPublishes, 1)
    await eventually(() => instance.status === 'end')
    await instance.connect()
    await eventually(() => b.gaps.length === 1)
    t.same(b.gaps, [['tasks']], 'the reconnect announces the drop')
    await a.bus.publish(change('tasks', 2))
    await eventually(() => b.events.length === 1)
    t.same(b.gaps.length, 1)
  })

  t.test('startup failures name the address', async (t) => {
    const listener = recorder()
    const { log } = recordingLogger()
    const started = Date.now()
    await t.rejects(createRedisBus({ redis: 'redis://127.0.0.1:1', channelPrefix: 'x', listener, log }), {
      code: 'FST_REST_LIVE_REDIS_UNREACHABLE',
      message: /cannot reach Redis at 127\.0\.0\.1:1: .*ECONNREFUSED/
    })
    t.ok(Date.now() - started < 2000, 'fails fast, no retrying forever')
    await t.rejects(createRedisBus({ redis: { host: '127.0.0.1', port: 1 }, channelPrefix: 'x', listener, log }), { code: 'FST_REST_LIVE_REDIS_UNREACHABLE' })

    const hanging = await silentServer()
    t.teardown(hanging.close)
    await t.rejects(createRedisBus({ redis: hanging.url, channelPrefix: 'x', listener, log, startupTimeoutMs: 200 }), {
      code: 'FST_REST_LIVE_REDIS_UNREACHABLE',
      message: /not ready within 200 ms/
    })

    const refused = new Redis('redis://127.0.0.1:1')
    refused.on('error', () => {})
    t.teardown(() => { refused.disconnect() })
    await t.rejects(createRedisBus({ redis: refused, channelPrefix: 'x', listener, log, startupTimeoutMs: 200 }), /127\.0\.0\.1:1: .*ECONNREFUSED/)
    t.not(refused.status, 'end', 'an instance given is left to its own retry policy')

    const connected = new Redis(REDIS_URL)
    t.teardown(async () => { await connected.quit() })
    t.equal(await connected.ping(), 'PONG')
    const onReady = await createRedisBus({ redis: connected, channelPrefix: uniqueName('ready'), listener, log })
    await onReady.close()
    t.equal(connected.status, 'ready', 'an instance that is ready already is used as it is, and left open')

    const closed = new Redis(REDIS_URL)
    await closed.quit()
    await eventually(() => closed.status === 'end')
    await t.rejects(createRedisBus({ redis: closed, channelPrefix: 'x', listener, log }), /has been closed/)
  })
})

const clusterUp = await redisClusterAvailable()

t.test('against a Redis Cluster (sharded pub/sub)', { skip: clusterUp ? false : CLUSTER_SKIP }, async (t) => {
  const admin = redisAdmin(true)
  t.teardown(admin.quit)

  async function node (t: { teardown: (fn: () => Promise<void>) => void }, prefix: string, redis: unknown = clusterOption()): Promise<{ bus: RedisBus } & ReturnType<typeof recorder> & ReturnType<typeof recordingLogger>> {
    const listener = recorder()
    const logger = recordingLogger()
    const bus = await createRedisBus({ redis, channelPrefix: prefix, listener, log: logger.log })
    t.teardown(async () => { await bus.close() })
    return { bus, ...listener, ...logger }
  }

  t.test('SSUBSCRIBE on the shard owning the channel, SPUBLISH to it, SUNSUBSCRIBE when the last follower leaves', async (t) => {
    const prefix = uniqueName('rbc')
    const a = await node(t, prefix)
    const b = await node(t, prefix)
    // several models: their channels hash to different slots, so to different masters
    const models = ['tasks', 'notes', 'users', 'tags']
    for (const model of models) await b.bus.follow(model)
    for (const model of models) t.equal(await admin.subscriberCount(`${prefix}:${model}`), 1, `${model}: one sharded subscriber`)
    t.same((await admin.channels(`${prefix}:*`)).sort(), models.map((model) => `${prefix}:${model}`).sort())
    for (const [i, model] of models.entries()) await a.bus.publish(change(model, i))
    await eventually(() => b.events.length === models.length)
    t.same(b.events.map((event) => event.model).sort(), [...models].sort())
    t.same(b.gaps, [])
    for (const model of models) b.bus.unfollow(model)
    await eventually(async () => (await admin.channels(`${prefix}:*`)).length === 0)
    t.same(a.events, [], 'a node following nothing hears nothing')
  })

  t.test('a killed sharded subscriber connection is replaced, resubscribed, then resyncs', async (t) => {
    const prefix = uniqueName('rbc')
    const a = await node(t, prefix)
    const b = await node(t, prefix)
    await b.bus.follow('tasks')
    await b.bus.follow('notes')
    await a.bus.publish(change('tasks', 1))
    await eventually(() => b.events.length === 1)
    const subscribers = (await admin.clients(`:${prefix}:${b.bus.nodeId}:sub`)).filter((c) => c.name.startsWith('ioredis-cluster(ssubscriber)'))
    t.ok(subscribers.length >= 1, 'one sharded subscriber connection per master owning a followed channel')
    for (const subscriber of subscribers) t.equal(await subscriber.kill(), 1)
    await eventually(() => b.gaps.length >= 1)
    t.same(b.gaps[0]?.slice().sort(), ['notes', 'tasks'], 'every followed model')
    for (const model of ['tasks', 'notes']) t.equal(await admin.subscriberCount(`${prefix}:${model}`), 1, `${model} subscribed again`)
    await a.bus.publish(change('tasks', 2))
    await eventually(() => b.events.length === 2)
    t.same(b.events.at(-1), change('tasks', 2), 'live again')
    t.match(b.messages('warn'), [/lost the Redis subscriber connection/])
    t.match(b.messages('info'), [/is back; resyncing/])
  })

  t.test('a serial gap is detected over sharded pub/sub too', async (t) => {
    const prefix = uniqueName('rbc')
    const b = await node(t, prefix)
    await b.bus.follow('tasks')
    const publisher = new Cluster(clusterNodes())
    t.teardown(async () => { await publisher.quit() })
    await publisher.spublish(`${prefix}:tasks`, JSON.stringify({ o: 'x', s: 1, e: change('tasks', 1) }))
    await publisher.spublish(`${prefix}:tasks`, JSON.stringify({ o: 'x', s: 3, e: change('tasks', 3) }))
    await eventually(() => b.gaps.length === 1)
    t.same(b.gaps, [['tasks']])
    t.same(b.events, [change('tasks', 1)])
  })

  t.test('a Cluster instance: published on, duplicated for subscribing, never closed', async (t) => {
    const prefix = uniqueName('rbc')
    const instance = new Cluster(clusterNodes(), { lazyConnect: true })
    t.teardown(async () => { await instance.quit() })
    const a = await node(t, prefix, instance)
    t.equal(instance.status, 'ready', 'a lazy instance is connected')
    const b = await node(t, prefix)
    await b.bus.follow('tasks')
    await a.bus.follow('tasks')
    await b.bus.publish(change('tasks', 1))
    await eventually(() => a.events.length === 1)
    t.same(a.events, [change('tasks', 1)], 'the duplicate subscribes with sharded pub/sub')
    await a.bus.publish(change('tasks', 2))
    // b, following tasks, heard its own publish directly, then a's over the cluster
    await eventually(() => b.events.length === 2)
    t.same(b.events, [change('tasks', 1), change('tasks', 2)], 'published on the instance with SPUBLISH')
    await a.bus.close()
    t.equal(instance.status, 'ready', 'still open after close')
    t.equal(await admin.subscriberCount(`${prefix}:tasks`), 1, "only b's subscriber is left")
  })

  t.test('an unreachable cluster fails startup, naming its nodes', async (t) => {
    const listener = recorder()
    const { log } = recordingLogger()
    await t.rejects(createRedisBus({ redis: { cluster: [{ host: '127.0.0.1', port: 1 }, 'redis://user:secret@127.0.0.1:2', 3] }, channelPrefix: 'x', listener, log, startupTimeoutMs: 500 }), {
      code: 'FST_REST_LIVE_REDIS_UNREACHABLE',
      message: /cannot reach Redis at cluster 127\.0\.0\.1:1,127\.0\.0\.1:2,127\.0\.0\.1:3: /
    })
  })
})
