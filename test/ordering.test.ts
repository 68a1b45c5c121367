/**
 * Events can be handled in another order than their commits: a node may handle
 * another node's newer write before its own older capture. Whatever the order,
 * the last event about a row must leave every view with the row as it is now.
 */
import Fastify, { type RouteOptions } from 'fastify'
import t from 'tap'
import type { ChangeEvent } from '../lib/bus/bus.js'
import { MemoryBus } from '../lib/bus/memory-bus.js'
import { LocalSequence } from '../lib/capture/local-sequence.js'
import { RouteRegistry, type RealtimeRoute } from '../lib/registry/route-registry.js'
import { UnkeyedRows } from '../lib/registry/unkeyed-rows.js'
import { createCounters } from '../lib/stats.js'
import { SubscriptionManager } from '../lib/subscriptions/manager.js'
import { QuerysetView } from '../lib/subscriptions/view.js'
import type { Row } from '../lib/types.js'
import { NativeSubscriber } from '../lib/ws/frames-out.js'
import { TaskSchema } from './helpers/app.js'
import { createTasksTable, sqlite, uniqueName } from './helpers/db.js'

t.test("a local capture handled after another node's newer write of the row does not bring the old row back", async (t) => {
  const db = sqlite()
  const table = uniqueName('tasks')
  await createTasksTable(db, table)
  t.teardown(async () => { await db.destroy() })
  const [row] = await db(table).insert({ title: 'v0', owner_id: 1 }).returning('*') as Row[]

  const registry = new RouteRegistry()
  registry.add({ method: 'GET', url: '/tasks', schema: { response: { 200: { type: 'array', items: TaskSchema } } }, config: { realtime: { model: table, queryset: () => db(table) } }, handler: async () => [] } as unknown as RouteOptions, { getSchemas: () => ({}) })
  const route = registry.byUrl('/tasks') as RealtimeRoute
  const serialize = (value: Row): string => JSON.stringify({ id: value.id, title: value.title, owner_id: value.owner_id })
  const log = Fastify().log
  const sequence = new LocalSequence()
  const manager = new SubscriptionManager(registry, log, createCounters(), sequence, new UnkeyedRows(log, registry, 'sqlite'))
  manager.attach(new MemoryBus({ event: (event) => { manager.onEvent(event) }, gap: (models) => { manager.onGap(models) } }))

  const frames: Record<string, Array<Record<string, unknown>>> = { owner1: [], owner2: [] }
  for (const owner of [1, 2]) {
    const id = `owner${owner}`
    await manager.subscribe({
      id,
      subscriber: new NativeSubscriber({ send: (frame) => { (frames[id] as Array<Record<string, unknown>>).push(JSON.parse(frame) as Record<string, unknown>); return true } }),
      view: new QuerysetView(id, route, db(table).where('owner_id', owner), serialize, undefined, () => {}, sequence),
      snapshot: true
    })
  }

  // this node commits: the task moves to owner 2 (its event is not handled yet) …
  const older = { ...row, owner_id: 2, title: 'v1' }
  await db(table).where({ id: row?.id }).update({ owner_id: 2, title: 'v1' })
  const local: ChangeEvent = { model: table, op: 'update', rows: [older] }
  const trustedAt = sequence.commit(table, { sentAt: sequence.tick(), receivedAt: sequence.tick() })
  t.ok(trustedAt !== undefined, 'the local commit raced nothing')
  sequence.stamp(local, trustedAt as number)
  // … then another node moves it back to owner 1, and its event arrives first
  await db(table).where({ id: row?.id }).update({ owner_id: 1, title: 'v2' })
  manager.onEvent({ model: table, op: 'update', rows: [{ ...row, owner_id: 1, title: 'v2' }] })
  await manager.idle()
  manager.onEvent(local)
  await manager.idle()

  const actions = (id: string): unknown[] => (frames[id] ?? []).filter((frame) => frame.type === 'broadcast').map((frame) => [frame.action, (frame.instance as Row).title])
  t.same(actions('owner1'), [['UPDATED', 'v2']], "owner 1 sees the other node's newer row, and keeps it")
  t.same(actions('owner2'), [], 'owner 2 is never told about the older row')
})
