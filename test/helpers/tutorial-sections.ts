/**
 * What docs/tutorial.md says each section's code does, checked against its
 * file in examples/tutorial, run as its own process: start it, call it over
 * HTTP, subscribe over a real socket, write, see the frames.
 *
 * Ordering, not time, decides when "nothing was sent": a subscriber's
 * broadcasts for one model arrive in commit order, so once the broadcast of a
 * later write has arrived, any broadcast an earlier write caused has too.
 */
import knex, { type Knex } from 'knex'
import type { Test } from 'tap'
import { WebSocket } from 'ws'
import { RestLiveClient } from '../../lib/client/index.js'
import type { Dialect } from './db.js'
import { redisAvailable, REDIS_URL } from './redis.js'
import { database, run, Socket, start, workspace, type Database, type Server, type Workspace } from './tutorial.js'

interface Task { id: number, title: string, done: boolean }

const alice = { cookie: 'sid=session-alice' }
const bob = { cookie: 'sid=session-bob' }

/** The test's own connection to a section's database, for seeding and reading (its writes are not captured). */
function open (dialect: Dialect, db: Database): Knex {
  return dialect === 'sqlite'
    ? knex({ client: 'better-sqlite3', connection: { filename: db.env.SQLITE_FILE as string }, useNullAsDefault: true })
    : knex({ client: 'pg', connection: db.env.DATABASE_URL as string, pool: { min: 0, max: 2 } })
}

/** alice (1) has a (open) and b (done, with a note); bob (2) has c. */
async function seed (sql: Knex): Promise<void> {
  await sql('tasks').insert([
    { owner_id: 1, title: 'a', done: false },
    { owner_id: 1, title: 'b', done: true, internal_note: 'secret' },
    { owner_id: 2, title: 'c', done: false }
  ])
}

const a: Task = { id: 1, title: 'a', done: false }
const b: Task = { id: 2, title: 'b', done: true }

async function http (server: Server, method: string, path: string, options: { body?: unknown, headers?: Record<string, string> } = {}): Promise<{ status: number, body: unknown, headers: Headers }> {
  const response = await fetch(server.url + path, {
    method,
    redirect: 'manual',
    headers: { ...options.headers, ...(options.body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) })
  })
  const text = await response.text()
  let body: unknown = text
  try { body = text === '' ? null : JSON.parse(text) } catch { /* not JSON: kept as text */ }
  return { status: response.status, body, headers: response.headers }
}

export async function tutorialSections (t: Test, dialect: Dialect): Promise<void> {
  const ws: Workspace = await workspace()
  const databases: Database[] = []
  // after every subtest's servers have stopped
  t.teardown(async () => {
    for (const db of databases) await db.drop()
    await ws.cleanup()
  })
  async function freshDatabase (): Promise<Database> {
    const db = await database(dialect, ws)
    databases.push(db)
    return db
  }

  /** Starts a section file on a fresh database (seeded unless told not to); stopped and dropped at teardown. */
  async function section (t: Test, file: string, options: { seed?: boolean, env?: Record<string, string>, db?: Database } = {}): Promise<{ server: Server, sql: Knex, db: Database }> {
    const db = options.db ?? await freshDatabase()
    const server = await start(file, ws.env({ ...db.env, ...options.env }))
    const sql = open(dialect, db)
    t.teardown(async () => {
      await server.stop()
      await sql.destroy()
    })
    if (options.seed !== false) await seed(sql)
    return { server, sql, db }
  }

  t.test('3. the plugin registered: a socket, but no realtime route yet', async (t) => {
    const { server } = await section(t, '03-register.js', { seed: false })
    t.equal((await http(server, 'GET', '/tasks')).status, 404)
    const socket = await Socket.open(server.ws)
    t.teardown(() => { socket.close() })
    t.match(await socket.ask({ type: 'subscribe', id: 1, model: 'tasks', action: 'list' }),
      { type: 'error', id: 1, code: 404, message: /no realtime route follows model 'tasks'/ })
  })

  t.test('4. a realtime list route: REST and subscription agree, hidden columns stay hidden', async (t) => {
    const { server } = await section(t, '04-realtime-route.js')
    t.same((await http(server, 'GET', '/tasks')).body, [a, b], 'alice (everyone, until section 9) sees her tasks, without owner_id or internal_note')
    t.same((await http(server, 'GET', '/tasks?done=true')).body, [b])
    t.equal((await http(server, 'GET', '/tasks?done=maybe')).status, 400)

    const socket = await Socket.open(server.ws)
    t.teardown(() => { socket.close() })
    t.same(await socket.ask({ type: 'subscribe', id: 1, model: 'tasks', action: 'list', snapshot: true }), { type: 'subscribed', id: 1, data: [a, b] })
    t.same(await socket.ask({ type: 'subscribe', id: 2, model: 'tasks', action: 'list', query_params: { done: true }, snapshot: true }), { type: 'subscribed', id: 2, data: [b] })
    t.match(await socket.ask({ type: 'subscribe', id: 3, model: 'tasks', action: 'list', query_params: { done: 'maybe' } }), { type: 'error', code: 400 })
  })

  t.test('5. a retrieve route follows one instance', async (t) => {
    const { server } = await section(t, '05-retrieve-route.js')
    t.same((await http(server, 'GET', '/tasks/1')).body, a)
    t.equal((await http(server, 'GET', '/tasks/3')).status, 404, "bob's task is not in alice's queryset")
    const socket = await Socket.open(server.ws)
    t.teardown(() => { socket.close() })
    t.same(await socket.ask({ type: 'subscribe', id: 1, model: 'tasks', action: 'retrieve', lookup_by: 1, snapshot: true }), { type: 'subscribed', id: 1, data: a })
    t.match(await socket.ask({ type: 'subscribe', id: 2, model: 'tasks', action: 'retrieve', lookup_by: 3 }), { type: 'error', code: 404 })
  })

  t.test('6. writes reach subscribers after commit; internal_note is never sent; raw SQL is announced', async (t) => {
    const { server, sql } = await section(t, '06-writes.js')
    const socket = await Socket.open(server.ws)
    t.teardown(() => { socket.close() })
    await socket.ask({ type: 'subscribe', id: 'all', model: 'tasks', action: 'list' })
    await socket.ask({ type: 'subscribe', id: 'open', model: 'tasks', action: 'list', query_params: { done: false } })
    await socket.ask({ type: 'subscribe', id: 'one', model: 'tasks', action: 'retrieve', lookup_by: 1 })

    const created = await http(server, 'POST', '/tasks', { body: { title: 'd' } })
    t.same(created, { status: 201, body: { id: 4, title: 'd', done: false }, headers: created.headers })
    t.same((await socket.broadcast('all', 'CREATED', 4)).instance, { id: 4, title: 'd', done: false })
    await socket.broadcast('open', 'CREATED', 4)

    const noted = await http(server, 'PATCH', '/tasks/1', { body: { internal_note: 'hush' } })
    t.same(noted.body, a, 'the PATCH answer leaves internal_note out')
    t.same((await http(server, 'PATCH', '/tasks/1', { body: { done: true } })).body, { ...a, done: true })
    t.same((await socket.broadcast('one', 'UPDATED', 1)).instance, { ...a, done: true })
    await socket.broadcast('open', 'DELETED', 1)
    await socket.broadcast('all', 'UPDATED', 1)
    t.same(socket.broadcasts('one'), [['UPDATED', { ...a, done: true }]], 'the internal_note change sent nothing')
    t.same(await sql('audit').select('task_id', 'user_id').orderBy('id'), [{ task_id: 1, user_id: 1 }, { task_id: 1, user_id: 1 }], 'each PATCH wrote its audit row in the transaction')
    t.equal((await sql('tasks').where({ id: 1 }).first() as { internal_note: string }).internal_note, 'hush')

    t.same((await http(server, 'PATCH', '/tasks/3', { body: { done: true } })).body, { message: 'no task 3' }, "bob's task is not alice's to change")
    t.equal((await http(server, 'PATCH', '/tasks/1', { body: {} })).status, 400)

    t.equal((await http(server, 'POST', '/tasks/complete-all')).status, 204)
    t.same((await socket.broadcast('all', 'UPDATED', 4)).instance, { id: 4, title: 'd', done: true }, 'the raw update, announced with publish()')
    await socket.broadcast('open', 'DELETED', 4)

    t.equal((await http(server, 'DELETE', '/tasks/4')).status, 204)
    t.same((await socket.broadcast('all', 'DELETED', 4)).instance, { id: 4 })
    t.equal((await http(server, 'DELETE', '/tasks/4')).status, 404)
  })

  t.test('7, 8. the page, the client, and REST over the socket', async (t) => {
    const { server } = await section(t, '07-browser.js')
    const page = await http(server, 'GET', '/')
    t.match(page.headers.get('content-type'), /^text\/html/)
    t.match(page.body, /import \{ RestLiveClient \} from '\/client\.js'/)
    t.match(page.body, /<link rel="icon"/, 'no /favicon.ico request')
    const client = await http(server, 'GET', '/client.js')
    t.match(client.headers.get('content-type'), /^text\/javascript/)
    t.match(client.body, /export class RestLiveClient/)
    t.notMatch(client.body, /^import /m, 'the browser loads one file')

    // the page's code, in Node: a live view of the open tasks
    const live = new RestLiveClient(server.ws, { WebSocket })
    t.teardown(() => { live.close() })
    let changed: () => void = () => {}
    const view = live.subscribe<Task>({ model: 'tasks', action: 'list', query_params: { done: false } }, {
      onChange: () => { changed() }
    })
    await view.ready
    t.same(view.rows, [a])
    const grown = new Promise<void>((resolve) => { changed = () => { if (view.rows.length === 2) resolve() } })
    t.equal((await live.request('POST', '/tasks', { title: 'from the page' })).status, 201)
    await grown
    t.same(view.rows.map((row) => row.title), ['a', 'from the page'], 'the broadcast added it, not the page')

    // section 8's script, against this server
    const socket = await Socket.open(server.ws)
    t.teardown(() => { socket.close() })
    await socket.ask({ type: 'subscribe', id: 'all', model: 'tasks', action: 'list' })
    const script = await run('08-request-frames.js', ws.env({ SERVER_URL: server.ws }))
    t.equal(script.code, 0, script.output)
    t.match(script.output, /created \{"id":5,"title":"write the tutorial","done":false\} \(201\), completed and deleted it/)
    await socket.broadcast('all', 'DELETED', 5)
    // each broadcast carries the row as it is when its write is re-checked, so the UPDATED may be
    // skipped when the DELETE committed first (the view converges either way, in commit order)
    const frames = socket.broadcasts('all')
    t.same(frames[0], ['CREATED', { id: 5, title: 'write the tutorial', done: false }])
    t.same(frames.slice(1, -1), frames.length === 3 ? [['UPDATED', { id: 5, title: 'write the tutorial', done: true }]] : [])
    t.same(frames.at(-1), ['DELETED', { id: 5 }])
  })

  t.test('9, 10. a session cookie decides who is asking; each subscriber gets its own difference', async (t) => {
    const { server } = await section(t, '09-auth.js')
    t.same((await http(server, 'GET', '/tasks')).body, { message: 'log in first: /login?as=alice' })
    t.equal(await Socket.refused(server.ws), 401, 'an anonymous client cannot open the socket')
    t.equal((await http(server, 'GET', '/')).status, 200, 'the page is public')
    t.equal((await http(server, 'GET', '/client.js')).status, 200)
    const login = await http(server, 'GET', '/login?as=alice')
    t.equal(login.status, 302)
    t.equal(login.headers.get('location'), '/')
    t.match(login.headers.get('set-cookie'), /^sid=session-alice; Path=\/; HttpOnly; SameSite=Lax/)
    t.equal((await http(server, 'GET', '/login?as=eve')).status, 403)
    t.same((await http(server, 'GET', '/tasks', { headers: bob })).body, [{ id: 3, title: 'c', done: false }])

    const alices = await Socket.open(server.ws, alice)
    const bobs = await Socket.open(server.ws, bob)
    t.teardown(() => { alices.close(); bobs.close() })
    t.same(await alices.ask({ type: 'subscribe', id: 'all', model: 'tasks', action: 'list', snapshot: true }), { type: 'subscribed', id: 'all', data: [a, b] })
    await alices.ask({ type: 'subscribe', id: 'open', model: 'tasks', action: 'list', query_params: { done: false } })
    await alices.ask({ type: 'subscribe', id: 'done', model: 'tasks', action: 'list', query_params: { done: true } })
    await bobs.ask({ type: 'subscribe', id: 'all', model: 'tasks', action: 'list' })
    t.match(await bobs.ask({ type: 'subscribe', id: 'one', model: 'tasks', action: 'retrieve', lookup_by: 1 }), { type: 'error', code: 404 }, "alice's task is not bob's to follow")

    // section 10's table: ticking a task off leaves ?done=false and enters ?done=true
    t.equal((await alices.request('PATCH', '/tasks/1', { done: true })).status, 200)
    await alices.broadcast('open', 'DELETED', 1)
    t.same((await alices.broadcast('done', 'CREATED', 1)).instance, { ...a, done: true })
    await alices.broadcast('all', 'UPDATED', 1)

    // nothing for a hidden column, nor for rows a subscriber never saw
    await alices.request('PATCH', '/tasks/1', { internal_note: 'hush' })
    t.equal((await bobs.request('DELETE', '/tasks/3')).status, 204)
    await bobs.broadcast('all', 'DELETED', 3)
    t.equal((await bobs.request('POST', '/tasks', { title: "bob's" })).status, 201)
    await bobs.broadcast('all', 'CREATED', 4)
    await alices.request('PATCH', '/tasks/1', { title: 'a!' })
    await alices.broadcast('all', 'UPDATED', 1)
    await alices.broadcast('done', 'UPDATED', 1)
    t.same(alices.broadcasts('all'), [['UPDATED', { ...a, done: true }], ['UPDATED', { id: 1, title: 'a!', done: true }]], 'alice heard nothing of the note, nor of bob')
    t.same(alices.broadcasts('open'), [['DELETED', { id: 1 }]])
  })

  t.test('11. a route without a queryset is re-run on every change of its model', async (t) => {
    const { server } = await section(t, '11-refetch.js')
    const alices = await Socket.open(server.ws, alice)
    const bobs = await Socket.open(server.ws, bob)
    t.teardown(() => { alices.close(); bobs.close() })
    t.same(await alices.ask({ type: 'subscribe', id: 'feed', path: '/activity', snapshot: true }), { type: 'subscribed', id: 'feed', data: [] })
    await alices.ask({ type: 'subscribe', id: 'all', model: 'tasks', action: 'list' })
    await bobs.request('PATCH', '/tasks/3', { done: true })
    await alices.request('PATCH', '/tasks/1', { done: true })
    t.same((await alices.broadcast('feed', 'CREATED', 2)).instance, { id: 2, text: 'alice changed task 1' })
    await alices.broadcast('all', 'UPDATED', 1)
    t.same(alices.broadcasts('feed'), [['CREATED', { id: 2, text: 'alice changed task 1' }]], "bob's change (audit row 1) is not in alice's feed")
    t.same((await http(server, 'GET', '/activity', { headers: alice })).body, [{ id: 2, text: 'alice changed task 1' }])
  })

  if (dialect === 'postgres') {
    const redisUp = await redisAvailable()
    t.test('12. two nodes on one database share changes through Redis', { skip: redisUp ? false : `Redis does not answer at ${REDIS_URL}` }, async (t) => {
      const db = await freshDatabase()
      const { server: nodeA } = await section(t, '12-redis.js', { db, env: { REDIS_URL } })
      const { server: nodeB } = await section(t, '12-redis.js', { db, env: { REDIS_URL }, seed: false })
      const onB = await Socket.open(nodeB.ws, alice)
      t.teardown(() => { onB.close() })
      await onB.ask({ type: 'subscribe', id: 'all', model: 'tasks', action: 'list' })
      t.equal((await http(nodeA, 'POST', '/tasks', { body: { title: 'from node A' }, headers: alice })).status, 201)
      t.same((await onB.broadcast('all', 'CREATED', 4)).instance, { id: 4, title: 'from node A', done: false })
    })
  } else {
    t.test('12. without REDIS_URL the same file runs as one process', async (t) => {
      const { server } = await section(t, '12-redis.js')
      const socket = await Socket.open(server.ws, alice)
      t.teardown(() => { socket.close() })
      await socket.ask({ type: 'subscribe', id: 'all', model: 'tasks', action: 'list' })
      t.equal((await socket.request('POST', '/tasks', { title: 'one node' })).status, 201)
      await socket.broadcast('all', 'CREATED', 4)
    })
  }

  t.test("13. the tutorial's own tests pass, and server.js serves the app", async (t) => {
    const db = await freshDatabase()
    const tests = await run('test/app.test.js', ws.env(db.env))
    t.equal(tests.code, 0, tests.output)
    t.match(tests.output, /# pass 3\n# fail 0/)
    const { server } = await section(t, 'server.js', { db, seed: false })
    t.equal((await http(server, 'GET', '/tasks', { headers: alice })).status, 200)
  })
}
