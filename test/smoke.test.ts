import t from 'tap'
import { buildTasksApp } from './helpers/app.js'
import { createTasksTable, sqlite, uniqueName } from './helpers/db.js'
import { TestClient } from './helpers/ws-client.js'

t.test('smoke', async (t) => {
  const db = sqlite()
  const table = uniqueName('tasks')
  await createTasksTable(db, table)
  const { app } = await buildTasksApp({ db, table })
  t.teardown(async () => { await app.close(); await db.destroy() })
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
