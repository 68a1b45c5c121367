/**
 * `snapshot: true`: the subscribed answer carries the view as REST would
 * answer it, and nothing is lost or doubled between it and the first broadcast.
 */
import t from 'tap'
import { postgresAvailable, type Dialect } from './helpers/db.js'
import { replayList } from './helpers/replay.js'
import type { Frame } from './helpers/ws-client.js'
import { tasksFixture } from './helpers/fixture.js'

t.test('the snapshot is the REST answer', async (t) => {
  const { app, table, user } = await tasksFixture(t, {
    prefix: 'snap',
    rows: [
      { title: 'a', owner_id: 1, done: false, secret: 'x' },
      { title: 'b', owner_id: 2, done: true, secret: 'x' },
      { title: 'c', owner_id: 1, done: true, secret: 'x' },
      { title: 'd', owner_id: 1, done: false, secret: 'x' }
    ]
  })
  const alice = await user(1)
  const carol = await user(3)
  const get = async (url: string, userId = 1): Promise<unknown> =>
    (await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${userId}` } })).json()

  const all = await alice.subscribe({ id: 'all', model: table, action: 'list', snapshot: true })
  t.same(all.data, await get('/tasks'))
  t.same(all.data, [
    { id: 1, title: 'a', owner_id: 1, done: false },
    { id: 3, title: 'c', owner_id: 1, done: true },
    { id: 4, title: 'd', owner_id: 1, done: false }
  ], 'in the route\'s order, with its schema (no secret)')
  t.same((await alice.subscribe({ id: 'done', model: table, action: 'list', query_params: { done: true }, snapshot: true })).data,
    await get('/tasks?done=true'))
  t.same((await alice.subscribe({ id: 'open', path: '/tasks?done=false', snapshot: true })).data, await get('/tasks?done=false'))
  t.same((await carol.subscribe({ id: 'none', model: table, action: 'list', snapshot: true })).data, [], 'an empty view is []')

  const one = await alice.subscribe({ id: 'one', model: table, action: 'retrieve', lookup_by: 3, snapshot: true })
  t.same(one, { type: 'subscribed', id: 'one', data: { id: 3, title: 'c', owner_id: 1, done: true } }, 'a retrieve snapshot is the object')
  t.same(one.data, await get('/tasks/3'))

  const quiet = await alice.subscribe({ id: 'quiet', model: table, action: 'list' })
  t.same(quiet, { type: 'subscribed', id: 'quiet' })
  t.notOk('data' in quiet, 'no data without snapshot')
  const quietOne = await alice.subscribe({ id: 'quiet one', model: table, action: 'retrieve', lookup_by: 1, snapshot: false })
  t.same(quietOne, { type: 'subscribed', id: 'quiet one' })
})

const dialects: Dialect[] = ['sqlite']
if (await postgresAvailable()) dialects.push('postgres')

for (const dialect of dialects) {
  t.test(`${dialect}: subscribing while rows are being written sees each row exactly once`, async (t) => {
    const { app, db, table, user } = await tasksFixture(t, { dialect, prefix: 'race' })
    // someone is already following the table, so its queue is busy with checks while others subscribe
    const watcher = await user(1)
    await watcher.subscribe({ id: 'w', model: table, action: 'list', snapshot: true })

    const total = 50
    const written: Array<Promise<void>> = []
    const progress: Array<() => void> = []
    const reached = Array.from({ length: total }, () => new Promise<void>((resolve) => { progress.push(resolve) }))
    // one writer inserting one row at a time, and bursts of concurrent inserts
    const writer = (async () => {
      for (let i = 0; i < total; i++) {
        if (i % 10 === 5) {
          written.push(...Array.from({ length: 3 }, async (_, j) => { await db(table).insert({ title: `burst ${i}.${j}`, owner_id: 1 }) }))
        }
        await db(table).insert({ title: `row ${i}`, owner_id: 1 })
        progress[i]?.()
      }
    })()

    // subscribers start at different points of the stream of writes
    const subscribers = [0, 3, 8, 15, 22, 30, 41, 49].map(async (at, n) => {
      await reached[at]
      const client = await user(1)
      const sub = `s${n}`
      const answer = await client.subscribe(n % 2 === 0 ? { id: sub, model: table, action: 'list', snapshot: true } : { id: sub, path: '/tasks', snapshot: true })
      t.equal(answer.type, 'subscribed')
      return { client, sub }
    })
    await writer
    await Promise.all(written)
    const subs = await Promise.all(subscribers)
    for (const { client } of subs) await client.flush(app)
    await watcher.flush(app)

    const rows = await db(table).select('id').orderBy('id') as Array<{ id: number }>
    t.equal(rows.length, total + 15)
    const everyId = rows.map((row) => row.id)
    for (const { client, sub } of [...subs, { client: watcher, sub: 'w' }]) {
      const frames = client.frames.filter((frame) => frame.id === sub)
      t.equal(frames[0]?.type, 'subscribed', `${sub}: the subscribed answer comes before its broadcasts`)
      const inSnapshot = (frames[0]?.data as Array<{ id: number }>).map((row) => row.id)
      const broadcasts = frames.filter((frame: Frame) => frame.type === 'broadcast')
      t.same(broadcasts.filter((frame) => frame.action !== 'CREATED'), [], `${sub}: inserts only ever make CREATED`)
      const created = broadcasts.map((frame) => (frame.instance as { id: number }).id)
      const seen = [...inSnapshot, ...created]
      t.equal(new Set(seen).size, seen.length, `${sub}: no row both in the snapshot and CREATED, or CREATED twice`)
      t.same([...seen].sort((a, b) => a - b), everyId, `${sub}: no row missing`)
      t.same(replayList(client.frames, sub), (await app.inject({ method: 'GET', url: '/tasks', headers: { authorization: 'Bearer 1' } })).json())
    }
  })
}
