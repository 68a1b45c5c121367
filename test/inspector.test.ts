import t from 'tap'
import { buildTasksApp } from './helpers/app.js'
import { createTasksTable, sqlite, uniqueName } from './helpers/db.js'
import { TestClient } from './helpers/ws-client.js'

t.test('the inspector is off by default', async (t) => {
  const db = sqlite()
  const table = uniqueName('tasks')
  await createTasksTable(db, table)
  const { app } = await buildTasksApp({ db, table })
  t.teardown(async () => { await app.close(); await db.destroy() })
  const page = await app.inject({ method: 'GET', url: '/ws/subscribe/inspector' })
  t.equal(page.statusCode, 404)
})

t.test('inspector: true serves counters and per-route views, without rows or SQL', async (t) => {
  const db = sqlite()
  const table = uniqueName('tasks')
  await createTasksTable(db, table)
  await db(table).insert({ title: 'private title', owner_id: 1 })
  const { app } = await buildTasksApp({ db, table, plugin: { inspector: true } })
  t.teardown(async () => { await app.close(); await db.destroy() })

  const page = await app.inject({ method: 'GET', url: '/ws/subscribe/inspector' })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /text\/html/)
  t.match(page.body, /fastify-rest-live inspector/)

  const alice = await TestClient.connect(app, { authorization: 'Bearer 1' })
  const bob = await TestClient.connect(app, { authorization: 'Bearer 2' })
  t.teardown(() => { alice.close(); bob.close() })
  await alice.subscribe({ id: 1, model: table, action: 'list' })
  await alice.subscribe({ id: 2, model: table, action: 'retrieve', lookup_by: 1 })
  await bob.subscribe({ id: 1, model: table, action: 'list' })

  const json = await app.inject({ method: 'GET', url: '/ws/subscribe/inspector.json' })
  const body = json.json() as { stats: Record<string, number>, routes: Array<Record<string, unknown>> }
  t.equal(body.stats.connections, 2)
  t.equal(body.stats.subscriptions, 3)
  t.same(body.routes.sort((a, b) => String(a.route).localeCompare(String(b.route))), [
    { model: table, route: '/tasks', kind: 'list', views: 2, subscriptions: 2 },
    { model: table, route: '/tasks/:id', kind: 'retrieve', views: 1, subscriptions: 1 }
  ])
  t.notMatch(json.body, /private title|select/)
})
