/**
 * Scale-out: two Fastify instances (two nodes), each with its own Knex pool to
 * one PostgreSQL table, sharing one Redis. The guarantees of one node hold
 * across nodes: enter/leave semantics, REST over the socket, no silent loss
 * when a subscriber connection is killed, convergence under random writes,
 * interest (a node hears only the models its subscribers follow).
 *
 * The multi-node tests run twice: over a single Redis (classic pub/sub) and over
 * a Redis Cluster (sharded pub/sub; `npm run redis:cluster` starts one locally).
 */
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Knex } from 'knex'
import { Redis } from 'ioredis'
import restLive from '../lib/index.js'
import { buildTasksApp } from './helpers/app.js'
import { createTasksTable, postgres, postgresAvailable, uniqueName } from './helpers/db.js'
import { eventually } from './helpers/eventually.js'
import { REDIS_URL, clients, redisAdmin, redisAvailable, redisClient, redisTargets, subscriberCount, type RedisAdmin, type RedisTarget } from './helpers/redis.js'
import { replayList, replayRetrieve } from './helpers/replay.js'
import { draws, seedsFor } from './helpers/seeds.js'
import { TestClient } from './helpers/ws-client.js'

const pgUp = await postgresAvailable()
const ready = pgUp && await redisAvailable()
const skip = ready ? false : 'needs PostgreSQL and Redis'

interface Node { app: FastifyInstance, db: Knex }
interface Cluster { a: Node, b: Node, table: string, prefix: string }
type Teardown = { teardown: (fn: () => Promise<void>) => void }

/** Two nodes on one table and one channel prefix; `between` runs once node A is up, before B starts. */
async function cluster (t: Teardown, target: RedisTarget, between?: (prefix: string) => Promise<void>): Promise<Cluster> {
  const table = uniqueName('scale')
  const prefix = uniqueName('rl')
  const setup = postgres()
  await createTasksTable(setup, table)
  t.teardown(async () => {
    await setup.schema.dropTableIfExists(table)
    await setup.destroy()
  })
  const start = async (): Promise<Node> => {
    const db = postgres()
    const { app } = await buildTasksApp({ db, table, plugin: { redis: target.option(), channelPrefix: prefix } })
    t.teardown(async () => {
      await app.close()
      await db.destroy()
    })
    return { app, db }
  }
  const a = await start()
  await between?.(prefix)
  const b = await start()
  return { a, b, table, prefix }
}

const auth = (user: number): Record<string, string> => ({ authorization: `Bearer ${user}` })

/** What REST answers right now for a subscriber's credentials and params (null for a 404). */
async function restGet (app: FastifyInstance, user: number, url: string): Promise<unknown> {
  const response = await app.inject({ method: 'GET', url, headers: auth(user) })
  return response.statusCode === 404 ? null : response.json()
}

interface Watch { client: TestClient, node: Node, user: number, id: string, url: string, single: boolean }

/** Subscribes `client` on `node` to `url` (a list with a query string, or one instance) with a snapshot. */
async function watch (client: TestClient, node: Node, user: number, id: string, url: string): Promise<Watch> {
  const answer = await client.subscribe({ id, path: url, snapshot: true })
  if (answer.type !== 'subscribed') throw new Error(`subscribing to ${url}: ${JSON.stringify(answer)}`)
  return { client, node, user, id, url, single: /\/tasks\/\d+/.test(url) }
}

function replayed (w: Watch): unknown {
  return w.single ? replayRetrieve(w.client.frames, w.id) : replayList(w.client.frames, w.id)
}

/** Waits until every watched view, replayed from its frames, equals REST; then asserts it (for a readable diff). */
async function converged (t: Tap, watches: Watch[], timeoutMs = 15_000): Promise<void> {
  const agree = async (): Promise<boolean> => {
    for (const w of watches) {
      if (JSON.stringify(replayed(w)) !== JSON.stringify(await restGet(w.node.app, w.user, w.url))) return false
    }
    return true
  }
  await eventually(agree, 'every view agreeing with REST', timeoutMs).catch(() => {}) // the assertions below show the difference
  for (const w of watches) t.same(replayed(w), await restGet(w.node.app, w.user, w.url), `${w.id}: ${w.url} as user ${w.user}`)
}
type Tap = Pick<typeof t, 'same'>

for (const target of redisTargets) {
  const skip = pgUp ? await target.skip() : 'needs PostgreSQL'
  t.test(`two nodes over ${target.name}`, { skip }, async (t) => {
    const admin = redisAdmin(target.sharded)
    t.teardown(admin.quit)
    multiNode(t, target, admin)
  })
}

function multiNode (t: Test, target: RedisTarget, admin: RedisAdmin): void {
  t.test('a write on node A reaches a subscriber on node B, with enter/leave semantics', async (t) => {
    const { a, b, table } = await cluster(t, target)
    const open = await TestClient.connect(b.app, auth(1))
    const done = await TestClient.connect(b.app, auth(1))
    t.teardown(async () => { open.close(); done.close() })
    t.same(await open.subscribe({ id: 'open', model: table, action: 'list', query_params: { done: false }, snapshot: true }), { type: 'subscribed', id: 'open', data: [] })
    await done.subscribe({ id: 'done', model: table, action: 'list', query_params: { done: true } })

    const created = await a.app.inject({ method: 'POST', url: '/tasks', headers: auth(1), payload: { title: 'write on A' } })
    const row = created.json() as { id: number }
    await open.next((f) => f.type === 'broadcast' && f.action === 'CREATED')
    await a.app.inject({ method: 'PATCH', url: `/tasks/${row.id}`, headers: auth(1), payload: { done: true } })
    await done.next((f) => f.type === 'broadcast' && f.action === 'CREATED')
    await a.app.inject({ method: 'PATCH', url: `/tasks/${row.id}`, headers: auth(1), payload: { done: false } })
    await done.next((f) => f.type === 'broadcast' && f.action === 'DELETED')
    await a.app.inject({ method: 'PATCH', url: `/tasks/${row.id}`, headers: auth(1), payload: { owner_id: 2 } })
    await eventually(() => open.broadcasts('open').length === 4)

    t.same(open.broadcasts('open').map((f) => f.action), ['CREATED', 'DELETED', 'CREATED', 'DELETED'], 'into the filter, out, in again, then to another owner')
    t.same(open.broadcasts('open')[0]?.instance, { id: row.id, title: 'write on A', owner_id: 1, done: false })
    t.match(open.broadcasts('open')[1]?.instance, { id: row.id })
    t.same(done.broadcasts('done').map((f) => f.action), ['CREATED', 'DELETED'])
    t.same(done.broadcasts('done')[0]?.instance, { id: row.id, title: 'write on A', owner_id: 1, done: true })
    t.equal(b.app.realtime.stats().resyncsSent, 0, 'nothing missed, nothing resynced')
  })

  t.test('a request frame on node B reaches a subscriber on node A', async (t) => {
    const { a, b, table } = await cluster(t, target)
    const watcher = await TestClient.connect(a.app, auth(3))
    const writer = await TestClient.connect(b.app, auth(3))
    t.teardown(async () => { watcher.close(); writer.close() })
    await watcher.subscribe({ id: 1, model: table, action: 'list' })
    const broadcast = watcher.next((f) => f.type === 'broadcast')
    const response = await writer.request('POST', '/tasks', { title: 'over the socket on B' })
    t.equal(response.status, 201)
    t.same(await broadcast, {
      type: 'broadcast',
      id: 1,
      model: table,
      action: 'CREATED',
      instance: { id: (response.body as { id: number }).id, title: 'over the socket on B', owner_id: 3, done: false }
    })
  })

  t.test('a node hears only the models its subscribers follow', async (t) => {
    const { a, b, table, prefix } = await cluster(t, target)
    const channel = `${prefix}:${table}`
    t.equal(await admin.subscriberCount(channel), 0, 'no subscriber anywhere: nobody listens')
    const onA = await TestClient.connect(a.app, auth(1))
    t.teardown(async () => { onA.close() })
    await onA.subscribe({ id: 1, model: table, action: 'list' })
    t.equal(await admin.subscriberCount(channel), 1, 'only node A listens')
    t.same(await admin.channels(`${prefix}:*`), [channel])

    await b.db(table).insert({ title: 'from B', owner_id: 1 })
    await a.db(table).insert({ title: 'from A', owner_id: 1 })
    await eventually(() => onA.broadcasts(1).length === 2)
    t.equal(b.app.realtime.stats().eventsReceived, 0, 'node B, following nothing, received none of them')
    t.equal(a.app.realtime.stats().eventsReceived, 2)

    const onB = await TestClient.connect(b.app, auth(1))
    t.teardown(async () => { onB.close() })
    await onB.subscribe({ id: 'x', model: table, action: 'list' })
    await onB.subscribe({ id: 'y', model: table, action: 'list', query_params: { done: true } })
    t.equal(await admin.subscriberCount(channel), 2, 'one subscription per node, not per subscriber')
    await onB.ask({ type: 'unsubscribe', id: 'x' })
    t.equal(await admin.subscriberCount(channel), 2, 'still followed by y')
    await onB.ask({ type: 'unsubscribe', id: 'y' })
    await eventually(async () => await admin.subscriberCount(channel) === 1)
    onA.close()
    await eventually(async () => await admin.subscriberCount(channel) === 0)
    t.equal(await admin.subscriberCount(channel), 0, 'each node releases the channel when its last subscriber leaves')
  })

  t.test('CLIENT KILL of a subscriber connection mid-stream: every event or a resync, then live again', async (t) => {
    // the node ids in the connection names (`<prefix>:<nodeId>:pub|sub`) of node A, seen before B starts
    const nodeIdIn = (name: string, prefix: string): string | undefined => name.slice(name.indexOf(`${prefix}:`) + prefix.length + 1).split(':')[0]
    let idsOfA = new Set<string | undefined>()
    const { a, b, table, prefix } = await cluster(t, target, async (prefix) => {
      idsOfA = new Set((await admin.clients(`${prefix}:`)).map((c) => nodeIdIn(c.name, prefix)))
    })

    const watches: Watch[] = []
    for (const [node, user] of [[a, 1], [b, 1], [b, 2]] as const) {
      const client = await TestClient.connect(node.app, auth(user))
      t.teardown(async () => { client.close() })
      watches.push(await watch(client, node, user, `all-${watches.length}`, '/tasks'))
      watches.push(await watch(client, node, user, `open-${watches.length}`, '/tasks?done=false'))
    }
    // on a cluster, the sharded subscriber connection of the master owning the channel's slot (made on the first SSUBSCRIBE)
    const subOfB = (await admin.clients(`${prefix}:`)).filter((c) => c.name.endsWith(':sub') && !idsOfA.has(nodeIdIn(c.name, prefix)) &&
      c.name.startsWith('ioredis-cluster(ssubscriber)') === target.sharded)
    t.equal(subOfB.length, 1, "node B's subscriber connection, found by its name")
    const writes: Array<Promise<unknown>> = []
    for (let i = 0; i < 60; i++) {
      if (i === 30) {
        // what Redis does to a subscriber over its client-output-buffer-limit
        t.equal(await subOfB[0]?.kill(), 1)
      }
      const owner = 1 + (i % 2)
      writes.push(a.db(table).insert({ title: `t${i}`, owner_id: owner, done: i % 3 === 0 }))
      if (i % 5 === 4) writes.push(a.db(table).where('title', `t${i - 2}`).update({ done: true }))
      // paced by the database, not a clock: the kill lands between committed writes, with others in flight
      await writes.at(-1)
    }
    await Promise.all(writes)
    await converged(t, watches)
    for (const w of watches) {
      const resyncs = w.client.frames.filter((f) => f.type === 'resync' && f.id === w.id).length
      if (w.node === b) t.ok(resyncs >= 1, `${w.id} on B was told it may have missed events`)
      else t.equal(resyncs, 0, `${w.id} on A missed nothing`)
    }
    t.ok(b.app.realtime.stats().gapsDetected >= 1)

    const before = watches.map((w) => w.client.broadcasts(w.id).length)
    await a.db(table).insert({ title: 'after', owner_id: 1, done: false })
    await b.db(table).insert({ title: 'after', owner_id: 2, done: false })
    await converged(t, watches)
    const live = watches.map((w, i) => w.client.broadcasts(w.id).length - (before[i] ?? 0))
    t.same(live, [1, 1, 1, 1, 1, 1], 'each subscriber got the next write live')
  })

  for (const seed of seedsFor(t)) {
    t.test(`convergence: hundreds of random writes spread over both nodes (seed ${seed})`, async (t) => {
      const { a, b, table } = await cluster(t, target)
      const rand = draws(seed)
      const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)] as T
      const users = [1, 2, 3]
      for (let i = 0; i < 12; i++) await a.db(table).insert({ title: `seed${i}`, owner_id: pick(users), done: rand() < 0.5 })

      const watches: Watch[] = []
      for (const node of [a, b]) {
        for (const user of users) {
          const client = await TestClient.connect(node.app, auth(user))
          t.teardown(async () => { client.close() })
          const n = watches.length
          watches.push(await watch(client, node, user, `all${n}`, '/tasks'))
          watches.push(await watch(client, node, user, `open${n}`, '/tasks?done=false'))
          watches.push(await watch(client, node, user, `done${n}`, '/tasks?done=true'))
        }
        // one instance that will change hands, be updated and likely deleted
        const owned = await node.db(table).where('owner_id', 1).first() as { id: number } | undefined
        if (owned !== undefined) {
          const client = await TestClient.connect(node.app, auth(1))
          t.teardown(async () => { client.close() })
          watches.push(await watch(client, node, 1, `one${watches.length}`, `/tasks/${owned.id}`))
        }
      }

      const operations = 300
      let inFlight: Array<Promise<unknown>> = []
      for (let i = 0; i < operations; i++) {
        const node = rand() < 0.5 ? a : b
        const ids = (await node.db(table).select('id') as Array<{ id: number }>).map((row) => row.id)
        const roll = rand()
        if (roll < 0.35 || ids.length === 0) {
          inFlight.push(node.db(table).insert({ title: `r${i}`, owner_id: pick(users), done: rand() < 0.5 }))
        } else if (roll < 0.55) {
          inFlight.push(node.db(table).where('id', pick(ids)).update({ done: rand() < 0.5 }))
        } else if (roll < 0.7) {
          inFlight.push(node.db(table).where('id', pick(ids)).update({ owner_id: pick(users), title: `moved${i}` }))
        } else if (roll < 0.8) {
          inFlight.push(node.db.transaction(async (trx) => {
            await trx(table).where('id', pick(ids)).update({ title: `trx${i}` })
            await trx(table).insert({ title: `trx-new${i}`, owner_id: pick(users), done: false })
          }))
        } else if (roll < 0.9) {
          inFlight.push(node.db(table).where('id', pick(ids)).del())
        } else {
          inFlight.push(node.app.inject({ method: 'PATCH', url: `/tasks/${pick(ids)}`, headers: auth(pick(users)), payload: { done: rand() < 0.5 } }))
        }
        // a few writes at once, so the two nodes interleave
        if (inFlight.length >= 4) {
          await Promise.all(inFlight)
          inFlight = []
        }
      }
      await Promise.all(inFlight)
      await converged(t, watches)
      const received = watches.reduce((sum, w) => sum + w.client.broadcasts(w.id).length, 0)
      t.ok(received > operations / 2, `${received} broadcasts over ${watches.length} subscriptions`)
      t.comment(`stats A ${JSON.stringify(a.app.realtime.stats())}`)
      t.comment(`stats B ${JSON.stringify(b.app.realtime.stats())}`)
    })
  }
}

t.test('one Redis, given or unreachable', { skip }, async (t) => {
  const admin = redisClient()
  t.teardown(async () => { await admin.quit() })

  t.test('an ioredis instance given to the plugin is not closed by it', async (t) => {
    const table = uniqueName('scale')
    const db = postgres()
    await createTasksTable(db, table)
    const instance = new Redis(REDIS_URL)
    t.teardown(async () => {
      await db.schema.dropTableIfExists(table)
      await db.destroy()
      await instance.quit()
    })
    const prefix = uniqueName('rl')
    const { app } = await buildTasksApp({ db, table, plugin: { redis: instance, channelPrefix: prefix } })
    const client = await TestClient.connect(app, auth(1))
    await client.subscribe({ id: 1, model: table, action: 'list' })
    t.equal(await subscriberCount(admin, `${prefix}:${table}`), 1, 'subscribed on a duplicate')
    await db(table).insert({ title: 'x', owner_id: 1 })
    await client.next((f) => f.type === 'broadcast')
    client.close()
    await app.close()
    t.equal(instance.status, 'ready', 'still open')
    t.equal(await instance.ping(), 'PONG')
    t.same(await clients(admin, `${prefix}:`), [], 'the duplicate it made is closed')
  })

  t.test('an unreachable Redis fails registration, naming the address', async (t) => {
    const db = postgres()
    t.teardown(async () => { await db.destroy() })
    const app = Fastify({ logger: false })
    t.teardown(async () => { await app.close() })
    await t.rejects(async () => { await app.register(restLive, { knex: db, redis: 'redis://127.0.0.1:1' }) }, {
      code: 'FST_REST_LIVE_REDIS_UNREACHABLE',
      message: /cannot reach Redis at 127\.0\.0\.1:1/
    })
  })
})
