/**
 * Equality filters are indexed: with many subscribers each filtering on their
 * own owner, a change visits only the views it can affect, and asks the
 * database nothing.
 */
import t from 'tap'
import { ViewSource } from '../lib/subscriptions/view.js'
import { tasksFixture } from './helpers/fixture.js'
import { TestClient } from './helpers/ws-client.js'

const OWNERS = 1500

// view reads caused by changes, counted in this test process only (the plugin keeps no process-wide counters)
const counted = { viewsRead: 0 }
const read = ViewSource.prototype.read
ViewSource.prototype.read = async function countedRead (this: ViewSource, keys) {
  counted.viewsRead++
  return await read.call(this, keys)
}
t.teardown(() => { ViewSource.prototype.read = read })

t.test('one write visits one view among 1500 distinct owner views', async (t) => {
  const { app, db, table, user } = await tasksFixture(t)
  const clients: TestClient[] = []
  for (let owner = 1; owner <= OWNERS; owner++) {
    const client = await user(owner)
    clients.push(client)
    await client.subscribe({ id: 'mine', model: table, action: 'list' })
  }
  t.equal(app.realtime.stats().subscriptions, OWNERS)
  const client = (owner: number): TestClient => clients[owner - 1] as TestClient
  const settle = async (): Promise<void> => { await app.realtime.settled() }

  const checks = app.realtime.stats().databaseChecks
  const reads = counted.viewsRead
  await db(table).insert({ title: 'seven', owner_id: 7 })
  await settle()
  t.equal(counted.viewsRead - reads, 1, 'an insert visits only its owner\'s view')
  t.equal(app.realtime.stats().databaseChecks - checks, 0, 'and asks the database nothing')
  const created = await client(7).next((frame) => frame.type === 'broadcast')
  t.same(created, { type: 'broadcast', id: 'mine', model: table, action: 'CREATED', instance: { id: 1, title: 'seven', owner_id: 7, done: false } })

  const moved = counted.viewsRead
  await db(table).where({ id: 1 }).update({ owner_id: 8 })
  await settle()
  t.equal(counted.viewsRead - moved, 2, 'a change of owner visits the old owner\'s view and the new one\'s')
  t.same((await client(7).next((frame) => frame.type === 'broadcast')).action, 'DELETED')
  t.same((await client(8).next((frame) => frame.type === 'broadcast')).instance, { id: 1, title: 'seven', owner_id: 8, done: false })

  const deleted = counted.viewsRead
  await db(table).where({ id: 1 }).del()
  await settle()
  t.equal(counted.viewsRead - deleted, 1, 'a delete visits the view that held the row')
  t.same((await client(8).next((frame) => frame.type === 'broadcast' && frame.action === 'DELETED')).instance, { id: 1 })

  const burst = counted.viewsRead
  await db.transaction(async (trx) => {
    for (let owner = 101; owner <= 200; owner++) await trx(table).insert({ title: `t${owner}`, owner_id: owner })
  })
  await settle()
  t.equal(counted.viewsRead - burst, 100, 'a burst of 100 writes for 100 owners visits 100 views, each once')
  t.equal(app.realtime.stats().databaseChecks - checks, 0, 'no database query for any of it')
  for (const owner of [101, 150, 200]) {
    await client(owner).flush(app)
    t.equal(client(owner).broadcasts('mine').length, 1)
  }
  await client(99).flush(app)
  t.equal(client(99).broadcasts('mine').length, 0, 'other owners hear nothing')

  // a row the event does not carry whole (announced by hand, primary key only) cannot be placed by value:
  // every view of the column is visited, and the database decides
  const partial = counted.viewsRead
  await app.realtime.publish(table, 'update', [{ id: 2 }])
  await settle()
  t.equal(counted.viewsRead - partial, OWNERS, 'a partial row visits every indexed view')
  t.equal(app.realtime.stats().databaseChecks - checks, OWNERS, 'and each asks the database')
})

t.test('a row seen by a snapshot taken after its event was queued is still followed', async (t) => {
  const { app, db, table, user } = await tasksFixture(t, { rows: [{ title: 'a', owner_id: 1 }] })
  const one = await user(1)
  const two = await user(2)
  await one.subscribe({ id: 1, model: table, action: 'list' })
  // the row moves to owner 2 and owner 2 subscribes (and sees it) before the change is announced
  await db.raw(`update ${table} set owner_id = 2 where id = 1`)
  const subscribed = await two.subscribe({ id: 2, model: table, action: 'list', snapshot: true })
  t.equal((subscribed.data as unknown[]).length, 1)
  const checks = app.realtime.stats().databaseChecks
  await app.realtime.publish(table, 'update', [await db(table).where({ id: 1 }).first()])
  await one.flush(app)
  await two.flush(app)
  t.same(one.broadcasts(1).map((frame) => frame.action), ['DELETED'], 'the old owner is told the row left')
  // publish() rows are re-read (capture/local-sequence.ts): one query for each view the index visits, old owner's and new's
  t.equal(app.realtime.stats().databaseChecks - checks, 2, 'both views that may hold the row are visited, and only they')
  await db(table).where({ id: 1 }).update({ title: 'b' })
  await two.flush(app)
  t.same(two.broadcasts(2).map((frame) => frame.action).slice(-1), ['UPDATED'])
  await one.flush(app)
  t.equal(one.broadcasts(1).length, 1)
})
