/**
 * Events can be handled in another order than their commits: a node may handle
 * another node's newer write before its own older capture. Whatever the order,
 * the last event about a row must leave every view with the row as it is now.
 */
import Fastify, { type RouteOptions } from 'fastify'
import t from 'tap'
import type { LocalChangeEvent } from '../lib/bus/bus.js'
import { MemoryBus } from '../lib/bus/memory-bus.js'
import { CommitClock } from '../lib/capture/commit-clock.js'
import { TableSchemas } from '../lib/matcher/schema.js'
import { RouteRegistry, type RealtimeRoute } from '../lib/registry/route-registry.js'
import { UnkeyedRows } from '../lib/registry/unkeyed-rows.js'
import { createCounters } from '../lib/stats.js'
import { SubscriptionManager } from '../lib/subscriptions/manager.js'
import { ModelQueue, type ChangedKeys, type ChangedRow } from '../lib/subscriptions/model-queue.js'
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
  const clock = new CommitClock()
  const schemas = new TableSchemas()
  const manager = new SubscriptionManager(registry, log, createCounters(), clock, new UnkeyedRows(log, registry, 'sqlite'))
  manager.attach(new MemoryBus({ event: (event) => { manager.onEvent(event) }, gap: (models) => { manager.onGap(models) } }))

  const frames: Record<string, Array<Record<string, unknown>>> = { owner1: [], owner2: [] }
  for (const owner of [1, 2]) {
    const id = `owner${owner}`
    await manager.subscribe({
      id,
      subscriber: new NativeSubscriber({ send: (frame) => { (frames[id] as Array<Record<string, unknown>>).push(JSON.parse(frame) as Record<string, unknown>); return true } }),
      view: new QuerysetView(id, route, db(table).where('owner_id', owner), serialize, undefined, { countQuery: () => {}, clock, schemas }),
      snapshot: true
    })
  }

  // this node commits: the task moves to owner 2 (its event is not handled yet) …
  const older = { ...row, owner_id: 2, title: 'v1' }
  await db(table).where({ id: row?.id }).update({ owner_id: 2, title: 'v1' })
  const local: LocalChangeEvent = { model: table, op: 'update', rows: [older] }
  local.trustedSince = clock.commit(table, { sentAt: clock.tick(), receivedAt: clock.tick() })
  t.ok(local.trustedSince !== undefined, 'the local commit raced nothing')
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

t.test("a local capture coalesced with another node's newer write of the row is re-read too", async (t) => {
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
  const clock = new CommitClock()
  const schemas = new TableSchemas()
  const manager = new SubscriptionManager(registry, log, createCounters(), clock, new UnkeyedRows(log, registry, 'sqlite'))
  manager.attach(new MemoryBus({ event: (event) => { manager.onEvent(event) }, gap: (models) => { manager.onGap(models) } }))

  const frames: Record<string, Array<Record<string, unknown>>> = { owner1: [], owner2: [] }
  for (const owner of [1, 2]) {
    const id = `owner${owner}`
    await manager.subscribe({
      id,
      subscriber: new NativeSubscriber({ send: (frame) => { (frames[id] as Array<Record<string, unknown>>).push(JSON.parse(frame) as Record<string, unknown>); return true } }),
      view: new QuerysetView(id, route, db(table).where('owner_id', owner), serialize, undefined, { countQuery: () => {}, clock, schemas }),
      snapshot: true
    })
  }

  // this node commits a rename (its event is not handled yet) …
  const older = { ...row, title: 'v1' }
  await db(table).where({ id: row?.id }).update({ title: 'v1' })
  const local: LocalChangeEvent = { model: table, op: 'update', rows: [older] }
  local.trustedSince = clock.commit(table, { sentAt: clock.tick(), receivedAt: clock.tick() })
  t.ok(local.trustedSince !== undefined, 'the local commit raced nothing')
  // … then another node gives the task to owner 2, and its event arrives first, in the same turn:
  // both wait in the model's queue together and are checked as one batch
  await db(table).where({ id: row?.id }).update({ owner_id: 2, title: 'v2' })
  manager.onEvent({ model: table, op: 'update', rows: [{ ...row, owner_id: 2, title: 'v2' }] })
  manager.onEvent(local)
  await manager.idle()

  const broadcasts = (id: string): unknown[] => (frames[id] ?? []).filter((frame) => frame.type === 'broadcast').map((frame) => [frame.action, frame.instance])
  t.same(broadcasts('owner2'), [['CREATED', { id: row?.id, title: 'v2', owner_id: 2 }]], 'owner 2 is given the task as it is now')
  t.same(broadcasts('owner1'), [['DELETED', { id: row?.id }]], 'owner 1 is told it is gone, never shown the older row')
})

t.test('changes of a key waiting together: the later wins only when both are trusted', async (t) => {
  const batches: ChangedKeys[] = []
  const queue = new ModelQueue({ check: async (keys) => { batches.push(keys) }, failed: () => {} })
  const change = (owner: number, trustedSince?: number, deleted = false): ChangedRow => ({ pk: 1, row: { id: 1, owner_id: owner }, deleted, trustedSince })
  const batch = async (...changes: ChangedRow[]): Promise<ChangedRow | undefined> => {
    for (const one of changes) queue.changes(new Map([['1', one]]))
    await queue.idle()
    return batches.pop()?.get('1')
  }

  t.same(await batch(change(1, 1), change(2, 2)), change(2, 2), 'two trusted captures: the later was sent after the earlier was answered, so it is the newer')
  t.same(await batch(change(2), change(1, 3)), { ...change(1), alsoSeen: [{ id: 1, owner_id: 2 }] },
    'another node’s change, then a capture of ours: not trusted, and both rows lead to views')
  t.same(await batch(change(1, 4), change(2)), { ...change(2), alsoSeen: [{ id: 1, owner_id: 1 }] }, 'the other way round too')
  t.same(await batch(change(2), change(1, 5), change(3, undefined, true)), { ...change(3, undefined, true), alsoSeen: [{ id: 1, owner_id: 2 }, { id: 1, owner_id: 1 }] },
    'three changes: every row seen is kept')
  t.same(await batch(change(2, undefined, true), change(3)), { ...change(3), alsoSeen: [] }, 'a deleted row leads to no view')
})
