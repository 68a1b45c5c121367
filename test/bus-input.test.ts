/**
 * What arrives on the Redis bus is untrusted: anyone who can PUBLISH on a
 * channel can send anything. A malformed message must cost a resync of the
 * model, never an exception in the subscriber connection's handler (which
 * would kill every node following the model), and must not flood the log.
 */
import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance, type RouteOptions } from 'fastify'
import type { Knex } from 'knex'
import t from 'tap'
import type { BusListener, ChangeEvent } from '../lib/bus/bus.js'
import { MemoryBus } from '../lib/bus/memory-bus.js'
import { CommitClock } from '../lib/capture/commit-clock.js'
import { createRedisBus } from '../lib/bus/redis-bus.js'
import { decodeMessage, InboundSerials } from '../lib/bus/redis-serial.js'
import { TableSchemas } from '../lib/matcher/schema.js'
import { RouteRegistry, type RealtimeRoute } from '../lib/registry/route-registry.js'
import { UnkeyedRows } from '../lib/registry/unkeyed-rows.js'
import { createCounters } from '../lib/stats.js'
import { SubscriptionManager } from '../lib/subscriptions/manager.js'
import { QuerysetView } from '../lib/subscriptions/view.js'
import { NativeSubscriber } from '../lib/ws/frames-out.js'
import { TaskSchema, buildTasksApp } from './helpers/app.js'
import { createTasksTable, postgres, postgresAvailable, sqlite, uniqueName } from './helpers/db.js'
import { eventually } from './helpers/eventually.js'
import { REDIS_URL, recordingLogger, redisAvailable, redisClient } from './helpers/redis.js'
import { TestClient, type Frame } from './helpers/ws-client.js'

t.test('messages are classified before anything uses them', async (t) => {
  const envelope = (e: unknown): string => JSON.stringify({ o: 'n', s: 1, e })
  const event = (fields: Record<string, unknown>): string => envelope({ model: 'm', op: 'update', rows: [{ id: 1 }], ...fields })
  t.same(decodeMessage(event({})), { kind: 'envelope', envelope: { o: 'n', s: 1, e: { model: 'm', op: 'update', rows: [{ id: 1 }] } } })
  const foreign: Array<[string, string]> = [
    ['garbage', 'not JSON'],
    ['[1,2]', 'an array'],
    ['{"o":"n"}', 'no serial'],
    ['{"o":"","s":1}', 'an empty origin'],
    [JSON.stringify({ o: 'x'.repeat(257), s: 1 }), 'an origin longer than any node id'],
    ['{"o":"n","s":-1}', 'a negative serial'],
    ['{"o":"n","s":1e300}', 'a serial beyond 2^53']
  ]
  for (const [raw, why] of foreign) t.equal(decodeMessage(raw).kind, 'foreign', why)
  t.same(decodeMessage('{"o":"n","s":1,"__proto__":{"x":1},"constructor":{"prototype":{"y":1}}}'), { kind: 'envelope', envelope: { o: 'n', s: 1 } }, 'prototype keys are removed, the rest judged as usual')
  for (const [raw, reason] of [
    [event({ rows: 5 }), /^\/e\/rows: /],
    [event({ rows: 'abc' }), /^\/e\/rows: /],
    [event({ rows: {} }), /^\/e\/rows: /],
    [event({ rows: [null] }), /^\/e\/rows: /],
    [event({ rows: [[1]] }), /^\/e\/rows: /],
    [event({ op: 'drop' }), /^\/e\/op: /],
    [event({ model: '' }), /^\/e\/model: /],
    [event({ model: 5 }), /^\/e\/model: /],
    [envelope(null), /^\/e: /],
    [envelope([]), /^\/e: /],
    [JSON.stringify({ o: 'n', s: 1, d: 2 }), /^\/d: /]
  ] as const) {
    const message = decodeMessage(raw)
    t.equal(message.kind, 'invalid', raw)
    t.match(message, { o: 'n', s: 1, reason })
  }
  const poisoned = decodeMessage(event({ rows: [JSON.parse('{"id":1,"__proto__":{"admin":true}}')] }))
  t.same(poisoned, { kind: 'envelope', envelope: { o: 'n', s: 1, e: { model: 'm', op: 'update', rows: [{ id: 1 }] } } }, '__proto__ keys are dropped from rows')
  const deep = `{"o":"n","s":1,"e":{"model":"m","op":"insert","rows":[{"id":1,"doc":${'['.repeat(100_000)}${']'.repeat(100_000)}}]}}`
  t.equal(decodeMessage(deep).kind, 'envelope', 'a deeply nested column value is parsed and checked without recursion')
})

t.test('forged origin ids do not grow the serial table without bound', async (t) => {
  const inbound = new InboundSerials(2)
  t.equal(inbound.check('c', 'a', 1), 'first')
  t.equal(inbound.check('c', 'b', 1), 'first')
  t.equal(inbound.check('c', 'a', 2), 'next', 'a is heard again: b is now the least recently heard')
  t.equal(inbound.check('c', 'forged', 1), 'first')
  t.equal(inbound.check('c', 'a', 3), 'next', 'a was kept')
  t.equal(inbound.check('c', 'b', 5), 'first', 'b was forgotten: a fresh baseline, not a false gap')
})

t.test('a burst of gaps re-reads each model once', async (t) => {
  const db = sqlite()
  const table = uniqueName('tasks')
  await createTasksTable(db, table)
  t.teardown(async () => { await db.destroy() })
  await db(table).insert({ title: 'a', owner_id: 1 })
  const registry = new RouteRegistry()
  registry.add({ method: 'GET', url: '/tasks', schema: { response: { 200: { type: 'array', items: TaskSchema } } }, config: { realtime: { model: table, queryset: () => db(table) } }, handler: async () => [] } as unknown as RouteOptions, { getSchemas: () => ({}) })
  const route = registry.byUrl('/tasks') as RealtimeRoute
  const counters = createCounters()
  const log = Fastify().log
  const clock = new CommitClock()
  const manager = new SubscriptionManager(registry, log, counters, clock, new UnkeyedRows(log, registry, 'sqlite'))
  manager.attach(new MemoryBus({ event: (event) => { manager.onEvent(event) }, gap: (models) => { manager.onGap(models) } }))
  const frames: string[] = []
  let reads = 0
  await manager.subscribe({ id: 1, subscriber: new NativeSubscriber({ send: (frame) => { frames.push(frame); return true } }), view: new QuerysetView('all', route, db(table), JSON.stringify, undefined, { countQuery: () => { reads++ }, clock, schemas: new TableSchemas() }), snapshot: false })
  const before = reads
  for (let i = 0; i < 1000; i++) manager.onGap([table])
  await manager.idle()
  t.equal(reads - before, 1, 'one re-read for the whole burst')
  t.equal(frames.filter((frame) => frame.includes('"resync"')).length, 1)
  t.equal(counters.gapsDetected, 1000, 'every gap is still counted')
  manager.onGap([table])
  await manager.idle()
  t.equal(reads - before, 2, 'a gap after the resync started gets a resync of its own')
})

const redisUp = await redisAvailable()

t.test('a listener that throws costs a resync, not the subscriber connection', { skip: redisUp ? false : 'Redis is not running' }, async (t) => {
  const prefix = uniqueName('bi')
  const gaps: string[][] = []
  const listener: BusListener = {
    event: () => { throw new TypeError('boom') },
    gap: (models) => { gaps.push(models) }
  }
  const logger = recordingLogger()
  const bus = await createRedisBus({ redis: REDIS_URL, channelPrefix: prefix, listener, log: logger.log })
  t.teardown(async () => { await bus.close() })
  const publisher = redisClient()
  t.teardown(async () => { await publisher.quit() })
  await bus.follow('tasks')
  const change: ChangeEvent = { model: 'tasks', op: 'update', rows: [{ id: 1 }] }
  await publisher.publish(`${prefix}:tasks`, JSON.stringify({ o: 'other', s: 1, e: change }))
  await eventually(() => gaps.length === 1)
  t.same(gaps, [['tasks']])
  t.match(logger.messages('warn'), [/handling an event failed; resyncing/])
})

const clusterUp = redisUp && await postgresAvailable()

t.test('garbage published on a model channel: every node survives, subscribers are resynced, later events flow', { skip: clusterUp ? false : 'needs PostgreSQL and Redis' }, async (t) => {
  const table = uniqueName('busin')
  const prefix = uniqueName('bi')
  const setup = postgres()
  await createTasksTable(setup, table)
  await setup(table).insert({ title: 'first', owner_id: 1 })
  t.teardown(async () => {
    await setup.schema.dropTableIfExists(table)
    await setup.destroy()
  })
  const warnings: Array<{ level: number, msg: string }> = []
  const start = async (): Promise<{ app: FastifyInstance, db: Knex }> => {
    const db = postgres()
    const stream = new Writable({ write (chunk, _encoding, callback) { warnings.push(JSON.parse(String(chunk))); callback() } })
    const { app } = await buildTasksApp({ db, table, plugin: { redis: REDIS_URL, channelPrefix: prefix }, logger: { level: 'warn', stream } })
    t.teardown(async () => {
      await app.close()
      await db.destroy()
    })
    return { app, db }
  }
  const a = await start()
  const b = await start()
  const client = await TestClient.connect(b.app, { authorization: 'Bearer 1' })
  const aClient = await TestClient.connect(a.app, { authorization: 'Bearer 1' })
  t.teardown(() => { client.close(); aClient.close() })
  t.match(await client.subscribe({ id: 'all', model: table, action: 'list', snapshot: true }), { type: 'subscribed', data: [{ title: 'first' }] })
  await aClient.subscribe({ id: 'all', model: table, action: 'list' })

  const attacker = redisClient()
  t.teardown(async () => { await attacker.quit() })
  const channel = `${prefix}:${table}`
  let s = 0
  const forged = (e: unknown): string => JSON.stringify({ o: 'attacker', s: ++s, e })
  const bad = [
    forged({ model: table, op: 'update', rows: 5 }),
    forged({ model: table, op: 'update', rows: [null] }),
    forged({ model: table, op: 'update', rows: [{ title: 'no pk' }] }),
    forged({ model: table, op: 'update', rows: [{ id: { toString: 1 } }] }),
    forged({ model: table, op: 'update', rows: [{ id: 0 }] }).replace('"id":0', '"id":1e400'),
    forged({ model: 'another_table', op: 'update', rows: [{ id: 1 }] }),
    forged({ model: table, op: 'truncate', rows: null }),
    forged(null)
  ]
  for (const message of bad) {
    const resynced = client.next((frame: Frame) => frame.type === 'resync')
    await attacker.publish(channel, message)
    t.match(await resynced, { type: 'resync', id: 'all', data: [{ title: 'first' }] }, `resync after ${message}`)
  }
  t.match(await aClient.next((frame: Frame) => frame.type === 'resync'), { type: 'resync', id: 'all' }, 'every node following the model resyncs')

  // well-formed but odd events are applied like any other: a re-check finds nothing changed
  const odd = [
    forged({ model: table, op: 'update', rows: [] }),
    forged({ model: table, op: 'update', rows: null }),
    forged({ model: table, op: 'delete', rows: [{ id: 999 }] }),
    forged({ model: table, op: 'insert', rows: [{ id: 1, title: { nested: [[1], { deeper: true }] }, owner_id: 'x', extra: null }] }).replace('"extra":null', '"constructor":{"prototype":{"polluted":true}},"__proto__":{"polluted":true}')
  ]
  for (const message of odd) await attacker.publish(channel, message)
  await attacker.publish(channel, 'not even JSON')
  // a valid change from another node after all that is still delivered (and after those, in order)
  const broadcast = client.next((frame: Frame) => frame.type === 'broadcast')
  await a.db(table).insert({ title: 'second', owner_id: 1 })
  t.match(await broadcast, { type: 'broadcast', id: 'all', action: 'CREATED', instance: { title: 'second' } })
  t.equal(client.frames.filter((frame) => frame.type === 'resync').length, bad.length, 'odd events and a foreign message are no reason to resync')
  t.equal(client.broadcasts('all').length, 1, 'and no reason to broadcast')
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was polluted')

  const count = (pattern: RegExp): number => warnings.filter((line) => line.level === 40 && pattern.test(line.msg)).length
  await eventually(() => count(/not a fastify-rest-live event/) === 2)
  t.equal(count(/ignored an invalid event; resyncing/), 2, 'one warning per node, however many bad messages (rate-limited per channel)')
  t.same(warnings.filter((line) => line.level >= 50), [], 'nothing is logged as an error')
})
