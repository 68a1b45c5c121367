/**
 * The tasks demo (examples/tasks): built from lib/ and the client's source, so
 * it needs no `npm run build`; the page, the client and a live list work.
 */
import { readFile } from 'node:fs/promises'
import t from 'tap'
import ts from 'typescript'
import { buildDemo } from '../examples/tasks/app.js'
import restLive from '../lib/index.js'
import { TestClient } from './helpers/ws-client.js'

/** lib/client/index.ts as the browser gets it (the same transform `npm run build` does, minus types). */
async function clientSource (): Promise<string> {
  const source = await readFile(new URL('../lib/client/index.ts', import.meta.url), 'utf8')
  return ts.transpileModule(source, { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ES2022 } }).outputText
}

t.test('the demo', async (t) => {
  const source = await clientSource()
  const app = await buildDemo({ restLive, clientSource: source })
  t.teardown(async () => { await app.close() })

  t.test('serves the page and the client', async (t) => {
    const page = await app.inject('/')
    t.equal(page.statusCode, 200)
    t.match(page.headers['content-type'], /^text\/html/)
    t.match(page.body, /<script type="module">/)
    t.match(page.body, /import \{ RestLiveClient \} from '\/client\.js'/)
    t.match(page.body, /<link rel="icon" href="data:image\/svg\+xml,/, 'an inline icon: no /favicon.ico request, no 404')
    t.match(page.body, /pre \{[^}]*overflow-wrap: anywhere/, 'long frames wrap inside the frames panel')

    const client = await app.inject('/client.js')
    t.equal(client.statusCode, 200)
    t.match(client.headers['content-type'], /^text\/javascript/)
    t.equal(client.body, source)
    t.match(client.body, /export class RestLiveClient/)
    t.notMatch(client.body, /^import /m, 'the browser loads one file: the client imports nothing')
  })

  t.test('has the inspector on, linked from the page', async (t) => {
    const inspector = await app.inject('/ws/subscribe/inspector')
    t.equal(inspector.statusCode, 200)
    t.match(inspector.body, /fastify-rest-live inspector/)
    t.match((await app.inject('/')).body, /<a href="\/ws\/subscribe\/inspector">inspector<\/a>/)
    t.same((await app.inject('/ws/subscribe/inspector.json')).json().routes.map((route: { route: string }) => route.route), ['/tasks', '/tasks/:id'])
  })

  t.test('starts with two tasks, REST and filters work', async (t) => {
    const all = await app.inject('/tasks')
    t.same(all.json(), [
      { id: 1, title: 'Try fastify-rest-live', done: true },
      { id: 2, title: 'Open this page in a second tab', done: false }
    ])
    t.same((await app.inject('/tasks?done=false')).json(), [{ id: 2, title: 'Open this page in a second tab', done: false }])
    t.same((await app.inject('/tasks/1')).json(), { id: 1, title: 'Try fastify-rest-live', done: true })
    t.equal((await app.inject('/tasks/99')).statusCode, 404)
  })

  t.test('a socket subscription sees the tasks created, changed and deleted by request frames', async (t) => {
    const tab1 = await TestClient.connect(app)
    const tab2 = await TestClient.connect(app)
    t.teardown(() => { tab1.close(); tab2.close() })
    const list = await tab1.subscribe({ id: 1, model: 'tasks', action: 'list', snapshot: true })
    t.equal((list.data as unknown[]).length, 2)
    await tab1.subscribe({ id: 2, model: 'tasks', action: 'list', query_params: { done: true } })
    await tab1.subscribe({ id: 3, model: 'tasks', action: 'retrieve', lookup_by: 1 })

    const created = tab1.next((frame) => frame.type === 'broadcast' && frame.id === 1)
    const response = await tab2.request('POST', '/tasks', { title: 'write the docs' })
    t.same(response, { type: 'response', id: response.id, status: 201, body: { id: 3, title: 'write the docs', done: false } })
    t.same(await created, { type: 'broadcast', id: 1, model: 'tasks', action: 'CREATED', instance: { id: 3, title: 'write the docs', done: false } })

    t.equal((await tab2.request('PATCH', '/tasks/3', { done: true })).status, 200)
    t.equal((await tab2.request('PATCH', '/tasks/1', { title: 'Tried it' })).status, 200)
    t.equal((await tab2.request('DELETE', '/tasks/3')).status, 204)
    await tab1.flush(app)
    t.same(tab1.broadcasts(1).map((frame) => frame.action), ['CREATED', 'UPDATED', 'UPDATED', 'DELETED'])
    t.same(tab1.broadcasts(2).map((frame) => [frame.action, (frame.instance as { id: number }).id]), [['CREATED', 3], ['UPDATED', 1], ['DELETED', 3]])
    t.same(tab1.broadcasts(3).map((frame) => frame.instance), [{ id: 1, title: 'Tried it', done: true }])

    t.match(await tab2.request('PATCH', '/tasks/3', { done: false }), { status: 404, body: { message: 'no task 3' } })
    t.match(await tab2.request('DELETE', '/tasks/3'), { status: 404, body: { message: 'no task 3' } })
    t.match(await tab2.request('POST', '/tasks', { title: '' }), { status: 400 })
  })
})
