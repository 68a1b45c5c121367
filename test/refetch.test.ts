/**
 * Routes without a queryset: the plugin cannot ask the database about a row,
 * so it re-runs the route (as the subscriber) and diffs the answer by primary key.
 */
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { replayList, replayRetrieve } from './helpers/replay.js'
import { task, tasksFixture, told } from './helpers/fixture.js'

async function rest (app: FastifyInstance, url: string, userId: number): Promise<unknown> {
  const response = await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${userId}` } })
  return response.statusCode === 200 ? response.json() : null
}

t.test('list: the snapshot is what the route answers', async (t) => {
  const { app, db, table, user } = await tasksFixture(t, { prefix: 'refetch', noQueryset: true })
  await db(table).insert([{ title: 'a', owner_id: 1, done: false }, { title: 'b', owner_id: 2, done: false }, { title: 'c', owner_id: 1, done: true }])
  const client = await user(1)
  const all = await client.subscribe({ id: 'all', model: table, action: 'list', snapshot: true })
  t.same(all.data, [task(1, 'a'), task(3, 'c', 1, true)])
  t.same(all.data, await rest(app, '/tasks', 1))
  const done = await client.subscribe({ id: 'done', path: '/tasks?done=true', snapshot: true })
  t.same(done.data, [task(3, 'c', 1, true)])
  t.same(await client.subscribe({ id: 'quiet', model: table, action: 'list' }), { type: 'subscribed', id: 'quiet' })
})

t.test('list: CREATED, UPDATED and DELETED by re-running the route', async (t) => {
  const { app, db, table, user, flush } = await tasksFixture(t, { prefix: 'refetch', noQueryset: true })
  const client = await user(1)
  await client.subscribe({ id: 'all', model: table, action: 'list', snapshot: true })
  await client.subscribe({ id: 'done', model: table, action: 'list', query_params: { done: true } })

  await db(table).insert({ title: 'a', owner_id: 1 })
  await flush()
  t.same(told(client, 'all'), [['CREATED', task(1, 'a')]])
  await db(table).where({ id: 1 }).update({ done: true })
  await flush()
  t.same(told(client, 'all').slice(1), [['UPDATED', task(1, 'a', 1, true)]])
  t.same(told(client, 'done'), [['CREATED', task(1, 'a', 1, true)]], 'moving into a filter is CREATED')
  await db(table).where({ id: 1 }).update({ secret: 'changed' })
  await flush()
  t.equal(told(client, 'all').length, 2, 'a change the route does not show sends nothing')
  await db(table).where({ id: 1 }).update({ done: false })
  await flush()
  t.same(told(client, 'done').slice(1), [['DELETED', { id: 1 }]], 'moving out of it is DELETED')
  await db(table).where({ id: 1 }).del()
  await flush()
  t.same(told(client, 'all').slice(2), [['UPDATED', task(1, 'a')], ['DELETED', { id: 1 }]])
  t.same(replayList(client.frames, 'all'), await rest(app, '/tasks', 1))
  t.notMatch(JSON.stringify(client.frames), /secret|hunter2/, "the route's schema still strips columns")
})

t.test('each user sees their own rows', async (t) => {
  const { app, db, table, user, flush } = await tasksFixture(t, { prefix: 'refetch', noQueryset: true })
  const alice = await user(1)
  const bob = await user(2)
  await alice.subscribe({ id: 1, model: table, action: 'list', snapshot: true })
  await bob.subscribe({ id: 1, model: table, action: 'list', snapshot: true })

  await db(table).insert([{ title: "alice's", owner_id: 1 }, { title: "bob's", owner_id: 2 }])
  await flush()
  t.same(told(alice, 1), [['CREATED', task(1, "alice's")]])
  t.same(told(bob, 1), [['CREATED', task(2, "bob's", 2)]])

  await db(table).where({ id: 1 }).update({ owner_id: 2 })
  await flush()
  t.same(told(alice, 1).slice(1), [['DELETED', { id: 1 }]])
  t.same(told(bob, 1).slice(1), [['CREATED', task(1, "alice's", 2)]])
  t.same(replayList(alice.frames, 1), await rest(app, '/tasks', 1))
  t.same(replayList(bob.frames, 1), await rest(app, '/tasks', 2))
})

t.test('retrieve through the route', async (t) => {
  const { app, db, table, user, flush } = await tasksFixture(t, { prefix: 'refetch', noQueryset: true })
  const client = await user(1)
  await db(table).insert([{ title: 'one', owner_id: 1 }, { title: 'two', owner_id: 1 }, { title: 'theirs', owner_id: 2 }])

  t.match(await client.subscribe({ id: 'missing', model: table, action: 'retrieve', lookup_by: 99 }), { type: 'error', id: 'missing', code: 404 })
  t.match(await client.subscribe({ id: 'theirs', model: table, action: 'retrieve', lookup_by: 3 }), { type: 'error', id: 'theirs', code: 404 },
    'not found for this user, as the route says')
  t.same(await client.subscribe({ id: 'one', model: table, action: 'retrieve', lookup_by: 1, snapshot: true }),
    { type: 'subscribed', id: 'one', data: task(1, 'one') })
  await client.subscribe({ id: 'two', path: '/tasks/2' })

  await db(table).where({ id: 1 }).update({ title: 'one!' })
  await flush()
  t.same(told(client, 'one'), [['UPDATED', task(1, 'one!')]])
  t.same(told(client, 'two'), [], 'another instance changing does not touch this one')

  await db(table).where({ id: 1 }).del()
  await flush()
  t.same(told(client, 'one').slice(1), [['DELETED', { id: 1 }]])

  await db(table).where({ id: 2 }).update({ owner_id: 2 })
  await flush()
  t.same(told(client, 'two'), [['DELETED', { id: 2 }]], 'DELETED when the route stops showing it')
  t.equal(replayRetrieve(client.frames, 'one'), await rest(app, '/tasks/1', 1))
})
