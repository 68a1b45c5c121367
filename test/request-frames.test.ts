/**
 * `request` frames: REST over the socket. Any route runs exactly as an HTTP
 * request with the upgrade's credentials would, and its answer comes back as
 * a `response` frame with the status and the parsed body.
 */
import { once } from 'node:events'
import t from 'tap'
import { WebSocket } from 'ws'
import { appFixture, tasksFixture, tasksTable } from './helpers/fixture.js'
import { TestClient } from './helpers/ws-client.js'
import { eventually } from './helpers/eventually.js'

t.test('create, update, delete through the socket with its credentials', async (t) => {
  const { db, table, user } = await tasksFixture(t)
  const client = await user(7)

  const created = await client.request('POST', '/tasks', { title: 'write tests' })
  t.match(created, { type: 'response', status: 201, body: { id: 1, title: 'write tests', owner_id: 7, done: false } }, 'the route saw the socket user')
  t.notOk('secret' in (created.body as object), 'the body is serialized by the route (no secret column)')
  t.same(Object.keys(created).sort(), ['body', 'id', 'status', 'type'])

  const updated = await client.request('PATCH', '/tasks/1', { done: true })
  t.match(updated, { type: 'response', status: 200, body: { id: 1, done: true } })
  t.match(await db(table).where({ id: 1 }).first(), { done: 1 }, 'the write happened')

  const listed = await client.request('GET', '/tasks?done=true')
  t.match(listed, { status: 200, body: [{ id: 1, title: 'write tests' }] })
  const one = await client.request('GET', '/tasks/1')
  t.match(one, { status: 200, body: { id: 1 } })

  const deleted = await client.request('DELETE', '/tasks/1')
  t.same(deleted, { type: 'response', id: deleted.id, status: 204, body: null }, '204 gives body null')
  t.equal(await db(table).count({ n: '*' }).first().then((row) => Number(row?.n)), 0)

  const gone = await client.request('GET', '/tasks/1')
  t.match(gone, { type: 'response', status: 404, body: { message: /No .* instance with id 1/ } }, 'a 404 is a response, not an error frame')
  const again = await client.request('DELETE', '/tasks/1')
  t.match(again, { type: 'response', status: 404 })
})

t.test('the id of the request is repeated, strings and integers alike', async (t) => {
  const { user } = await tasksFixture(t)
  const client = await user(1)
  t.match(await client.ask({ type: 'request', id: 42, method: 'GET', path: '/tasks' }), { type: 'response', id: 42, status: 200, body: [] })
  t.match(await client.ask({ type: 'request', id: 'abc', method: 'GET', path: '/tasks' }), { type: 'response', id: 'abc', status: 200 })
})

t.test('validation failures are 400 responses', async (t) => {
  const { user } = await tasksFixture(t)
  const client = await user(1)
  const noTitle = await client.request('POST', '/tasks', { done: true })
  t.match(noTitle, { type: 'response', status: 400, body: { statusCode: 400, message: /body must have required property 'title'/ } })
  const badType = await client.request('PATCH', '/tasks/1', { done: 'very' })
  t.match(badType, { type: 'response', status: 400, body: { message: /body\/done must be boolean/ } })
  const badParam = await client.request('GET', '/tasks/abc')
  t.match(badParam, { type: 'response', status: 400, body: { message: /params\/id must be integer/ } })
  const badQuery = await client.request('GET', '/tasks?done=maybe')
  t.match(badQuery, { type: 'response', status: 400, body: { message: /querystring\/done must be boolean/ } })
  t.notOk(client.frames.some((f) => f.type === 'error'), 'no error frames')
  t.equal(client.closed, undefined)
})

t.test('an unauthenticated socket gets the 401 REST would give', async (t) => {
  const { db, table, connect } = await tasksFixture(t)
  const client = await connect()
  const denied = await client.request('POST', '/tasks', { title: 'sneaky' })
  t.match(denied, { type: 'response', status: 401, body: { message: 'authentication required' } })
  t.match(await client.request('GET', '/tasks'), { status: 401 })
  t.equal((await db(table).select()).length, 0, 'nothing was written')
})

t.test('headers of the request frame cannot be forged beyond the socket credentials', async (t) => {
  const { user } = await tasksFixture(t)
  const user2 = await user(2)
  const user3 = await user(3)
  const created = await user2.request('POST', '/tasks', { title: 'private' })
  t.match(created, { status: 201, body: { owner_id: 2 } })
  t.match(await user3.request('GET', '/tasks/1'), { status: 404 }, 'another user cannot read it')
  t.match(await user3.request('PATCH', '/tasks/1', { title: 'mine now' }), { status: 404 }, 'nor change it')
  t.match(await user2.request('GET', '/tasks/1'), { status: 200, body: { title: 'private' } })
})

t.test('any route: custom actions, text answers, errors, unknown paths', async (t) => {
  const { app, db, tables: table, connect } = await appFixture(t, {
    tables: tasksTable(),
    routes: (app, db, table) => {
      app.get('/tasks', { config: { realtime: { model: table, queryset: () => db(table).orderBy('id') } } }, async (request) => await app.realtime.list(request))
      app.post('/tasks/:id/complete', async (request, reply) => {
        const id = Number((request.params as { id: string }).id)
        const changed = await db(table).where({ id }).update({ done: true })
        return changed === 0 ? await reply.code(404).send({ message: 'no such task' }) : { completed: id, by: request.headers.authorization ?? null }
      })
      app.put('/tasks/:id', async (request) => {
        const id = Number((request.params as { id: string }).id)
        await db(table).where({ id }).update(request.body as object)
        return await db(table).where({ id }).first()
      })
      app.get('/hello', async (_request, reply) => await reply.type('text/plain').send('hello, world'))
      app.get('/html', async (_request, reply) => await reply.type('text/html').send('<p>"quoted"</p>'))
      app.get('/problem', async (_request, reply) => await reply.code(409).type('application/problem+json').send(JSON.stringify({ title: 'conflict' })))
      app.get('/boom', async () => { throw new Error('kaboom') })
      app.get('/echo', async (request) => ({ query: request.query, headers: { cookie: request.headers.cookie ?? null, authorization: request.headers.authorization ?? null } }))
    }
  })
  await db(table).insert({ title: 'a', owner_id: 1 })

  const client = await connect({ authorization: 'Token abc', cookie: 'session=s1' })
  const sub = await client.subscribe({ id: 's', model: table, action: 'list' })
  t.match(sub, { type: 'subscribed' })

  const complete = await client.request('POST', '/tasks/1/complete')
  t.same(complete.body, { completed: 1, by: 'Token abc' }, 'a custom non-realtime route, with the socket credentials')
  t.equal(complete.status, 200)
  const missing = await client.request('POST', '/tasks/99/complete')
  t.match(missing, { status: 404, body: { message: 'no such task' } })
  const put = await client.request('PUT', '/tasks/1', { title: 'renamed' })
  t.match(put, { status: 200, body: { id: 1, title: 'renamed' } })

  await client.flush(app)
  t.same(client.broadcasts('s').map((f) => f.action), ['UPDATED', 'UPDATED'], 'writes made by request frames are broadcast')

  t.same(await client.request('GET', '/hello').then((f) => [f.status, f.body]), [200, 'hello, world'], 'a text answer arrives as a JSON string')
  t.same(await client.request('GET', '/html').then((f) => f.body), '<p>"quoted"</p>')
  t.same(await client.request('GET', '/problem').then((f) => [f.status, f.body]), [409, { title: 'conflict' }], 'any JSON media type is parsed')
  t.match(await client.request('GET', '/boom'), { type: 'response', status: 500, body: { message: 'kaboom' } })
  t.match(await client.request('GET', '/nowhere'), { type: 'response', status: 404, body: { message: 'Route GET:/nowhere not found' } })
  const echo = await client.request('GET', '/echo?a=1&b=two')
  t.same(echo.body, { query: { a: '1', b: 'two' }, headers: { cookie: 'session=s1', authorization: 'Token abc' } }, 'query string and credentials reach the route')
  t.notOk(client.frames.some((f) => f.type === 'error' && !String(f.id).startsWith('__flush')), 'no error frames')
})

t.test('a request still runs when its socket closes first', async (t) => {
  let open!: () => void
  let reached!: () => void
  const opened = new Promise<void>((resolve) => { open = resolve })
  const waiting = new Promise<void>((resolve) => { reached = resolve })
  const { app, db, tables: table, connect } = await appFixture(t, {
    tables: tasksTable(),
    routes: (app, db, table) => {
      app.post('/slow', async () => {
        reached()
        await opened
        const [row] = await db(table).insert({ title: 'slow', owner_id: 1 }).returning('*')
        return row
      })
    }
  })
  const client = await connect()
  client.send({ type: 'request', id: 1, method: 'POST', path: '/slow', body: {} })
  await waiting
  client.close()
  await eventually(() => app.realtime.stats().connections === 0, 'the socket closing')
  open()
  await eventually(async () => (await db(table).select()).length > 0, 'the write')
  t.match(await db(table).select(), [{ title: 'slow' }], 'the write happened, like an HTTP request whose client hung up')
  t.same(client.frames, [], 'and nothing was sent to the closed socket')
})

t.test('frames that arrive while the server shuts down get a 500, not silence', async (t) => {
  let answers: Promise<unknown> = Promise.resolve()
  let client: TestClient | null = null
  // over a real socket: app.injectWS's in-memory stream never finishes a close the server starts
  const { app, url: address } = await appFixture(t, {
    tables: tasksTable(),
    before: (app, _db, table) => {
      // runs before the plugin's own preClose, which closes the sockets: Fastify already refuses new requests
      app.addHook('preClose', async () => {
        if (client === null) return
        const socket = client
        answers = Promise.all([
          socket.request('GET', '/tasks'),
          socket.subscribe({ id: 's', model: table, action: 'list' })
        ])
        await answers
      })
    },
    routes: (app, db, table) => {
      app.get('/tasks', { config: { realtime: { model: table, queryset: () => db(table) } } }, async (request) => await app.realtime.list(request))
    },
    listen: true
  })
  const socket = new WebSocket(`${String(address).replace(/^http/, 'ws')}/ws/subscribe`)
  await once(socket, 'open')
  client = new TestClient(socket)
  t.match(await client.request('GET', '/tasks'), { type: 'response', status: 200 })

  const closed = once(socket, 'close')
  await app.close()
  const [request, subscribe] = await answers as [unknown, unknown]
  t.match(request, { type: 'error', code: 500, message: /Fastify has already been closed/ })
  t.match(subscribe, { type: 'error', id: 's', code: 500, message: /Fastify has already been closed/ })
  t.equal((await closed)[0], 1001)
})
