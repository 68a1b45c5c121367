import t from 'tap'
import { tasksFixture } from './helpers/fixture.js'
import { TestClient } from './helpers/ws-client.js'

t.test('smoke', async (t) => {
  const { app, db, table } = await tasksFixture(t)
  await db(table).insert({ title: 'a', owner_id: 1 })
  const client = await TestClient.connect(app, { authorization: 'Bearer 1' })
  const sub = await client.subscribe({ id: 1, model: table, action: 'list', snapshot: true })
  t.same(sub, { type: 'subscribed', id: 1, data: [{ id: 1, title: 'a', owner_id: 1, done: false }] })
  const created = client.next((f) => f.type === 'broadcast')
  const res = await client.request('POST', '/tasks', { title: 'b' })
  t.equal(res.status, 201)
  t.same(await created, { type: 'broadcast', id: 1, model: table, action: 'CREATED', instance: { id: 2, title: 'b', owner_id: 1, done: false } })
  await db.transaction(async (trx) => {
    await trx(table).where({ id: 2 }).update({ done: true })
    await trx(table).where({ id: 1 }).del()
  })
  await client.flush(app)
  t.same(client.broadcasts(1).map((f) => f.action), ['CREATED', 'UPDATED', 'DELETED'])
  client.close()
})
