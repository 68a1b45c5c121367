/**
 * The inspector (lib/inspector): its page and its JSON. What the page does in
 * a browser is test/inspector-browser.test.ts.
 */
import { Script } from 'node:vm'
import t from 'tap'
import { inspect } from '../lib/inspector/inspector.js'
import { inspectorPage } from '../lib/inspector/page.js'
import { buildTasksApp } from './helpers/app.js'
import { tasksFixture } from './helpers/fixture.js'
import { createTasksTable, sqlite, uniqueName } from './helpers/db.js'
import { TestClient } from './helpers/ws-client.js'

/** The page's inline script. */
function scriptOf (html: string): string {
  const match = /<script type="module">([\s\S]*?)<\/script>/.exec(html)
  if (match?.[1] === undefined) throw new Error('no inline script')
  return match[1]
}

t.test('the inspector is off by default', async (t) => {
  const { app } = await tasksFixture(t)
  const page = await app.inject({ method: 'GET', url: '/ws/subscribe/inspector' })
  t.equal(page.statusCode, 404)
  t.equal((await app.inject({ method: 'GET', url: '/ws/subscribe/inspector.json' })).statusCode, 404)
})

t.test('inspector: true lists every realtime route at startup and counts views and subscriptions, without rows or SQL', async (t) => {
  const db = sqlite()
  const table = uniqueName('tasks')
  await createTasksTable(db, table)
  await db(table).insert({ title: 'private title', owner_id: 1 })
  const { app } = await buildTasksApp({ db, table, plugin: { inspector: true } })
  t.teardown(async () => { await app.close(); await db.destroy() })

  const page = await app.inject({ method: 'GET', url: '/ws/subscribe/inspector' })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /text\/html/)
  t.equal(page.headers['cache-control'], 'no-store')
  t.match(page.body, /fastify-rest-live inspector/)
  t.match(page.body, /<link rel="icon" href="data:,">/, 'no /favicon.ico request')
  t.notMatch(page.body, /<script[^>]+src=/, 'no build step, nothing to load: the script is inline')
  t.doesNotThrow(() => new Script(scriptOf(page.body)), 'the inline script parses')
  t.match(scriptOf(page.body), /"socketPath":"\/ws\/subscribe","jsonUrl":"\/ws\/subscribe\/inspector.json"/)

  const before = await app.inject({ method: 'GET', url: '/ws/subscribe/inspector.json' })
  t.equal(before.headers['cache-control'], 'no-store')
  t.same(before.json(), {
    stats: { connections: 0, subscriptions: 0, broadcastsSent: 0, resyncsSent: 0, eventsReceived: 0, gapsDetected: 0, databaseChecks: 0 },
    routes: [
      { route: '/tasks', model: table, kind: 'list', lookup: 'id', pk: 'id', views: 0, subscriptions: 0 },
      { route: '/tasks/:id', model: table, kind: 'retrieve', lookup: 'id', pk: 'id', views: 0, subscriptions: 0 }
    ]
  }, 'every realtime route is listed before anyone subscribes')

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
  t.same(body.routes, [
    { route: '/tasks', model: table, kind: 'list', lookup: 'id', pk: 'id', views: 2, subscriptions: 2 },
    { route: '/tasks/:id', model: table, kind: 'retrieve', lookup: 'id', pk: 'id', views: 1, subscriptions: 1 }
  ])
  t.notMatch(json.body, /private title|select/)
})

t.test('inspect() lists declared routes in order, with what this node holds for each', async (t) => {
  const stats = { connections: 1, subscriptions: 2, broadcastsSent: 0, resyncsSent: 0, eventsReceived: 0, gapsDetected: 0, databaseChecks: 0 }
  t.same(inspect({
    stats: () => stats,
    declared: () => [
      { url: '/b', model: 'b', kind: 'list', lookup: 'id', pk: 'id' },
      { url: '/a/:slug', model: 'a', kind: 'retrieve', lookup: 'slug', pk: 'uuid' }
    ],
    routes: () => [{ route: '/a/:slug', model: 'a', kind: 'retrieve', views: 1, subscriptions: 2 }]
  }), {
    stats,
    routes: [
      { route: '/b', model: 'b', kind: 'list', lookup: 'id', pk: 'id', views: 0, subscriptions: 0 },
      { route: '/a/:slug', model: 'a', kind: 'retrieve', lookup: 'slug', pk: 'uuid', views: 1, subscriptions: 2 }
    ]
  })
})

t.test('the page cannot be broken out of by its configuration', async (t) => {
  const html = inspectorPage({ socketPath: '/ws</script><script>alert(1)</script>', jsonUrl: '/ws/inspector.json' })
  t.equal(html.match(/<\/script>/g)?.length, 1, 'only the page closes its script element')
  t.doesNotThrow(() => new Script(scriptOf(html)))
  t.match(scriptOf(html), '"socketPath":"/ws<\\/script><script>alert(1)<\\/script>"')
})
