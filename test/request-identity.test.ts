/**
 * A route decides the same over HTTP and over the socket: subscribe checks,
 * request frames and channels-api actions run with the client's own address
 * (and the app's trustProxy handling) and the upgrade's headers.
 *
 * Clients connect over real sockets from 127.0.0.2, an address a route can
 * tell apart from the 127.0.0.1 that `app.inject` uses by default.
 */
import { once } from 'node:events'
import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import t, { type Test } from 'tap'
import { WebSocket } from 'ws'
import { createTasksTable } from './helpers/db.js'
import { appFixture } from './helpers/fixture.js'
import { TestClient } from './helpers/ws-client.js'

interface Seen { ip: string, host: string, protocol: string, userAgent: unknown, language: unknown, apiKey: unknown, setCookie: unknown }

/** Tasks routes that answer 403 to any address but `allowed`, and report what they saw. */
async function guardedApp (t: Test, allowed: string, server: FastifyServerOptions = {}): Promise<{ app: FastifyInstance, url: string, seen: Seen[] }> {
  const seen: Seen[] = []
  const { app, url } = await appFixture(t, {
    server,
    tables: async (db, name) => {
      const table = name('tasks')
      await createTasksTable(db, table)
      return table
    },
    routes: async (app, db, table) => {
      app.realtime.resource('tasks', { prefix: '/tasks' })
      const guard = async (request: import('fastify').FastifyRequest): Promise<void> => {
        seen.push({ ip: request.ip, host: request.host, protocol: request.protocol, userAgent: request.headers['user-agent'], language: request.headers['accept-language'], apiKey: request.headers['x-api-key'], setCookie: request.headers['set-cookie'] })
        if (request.ip !== allowed) throw Object.assign(new Error(`address ${request.ip} may not read tasks`), { statusCode: 403 })
      }
      app.get('/tasks', {
        onRequest: guard,
        config: { realtime: { model: table, queryset: () => db(table).select('id', 'title').orderBy('id') } }
      }, async (request) => await app.realtime.list(request))
      await db(table).insert({ title: 'first', owner_id: 1 })
    },
    listen: true
  })
  return { app, url: String(url), seen }
}

async function connectFrom (t: Test, url: string, localAddress: string, headers: Record<string, string> = {}): Promise<TestClient> {
  const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/ws/subscribe`, { localAddress, headers })
  await once(socket, 'open')
  const client = new TestClient(socket)
  t.teardown(() => { client.close() })
  return client
}

async function httpStatus (url: string, localAddress: string, headers: Record<string, string> = {}): Promise<number> {
  const { request } = await import('node:http')
  return await new Promise((resolve, reject) => {
    const req = request(`${url}/tasks`, { localAddress, headers }, (res) => { res.resume(); resolve(res.statusCode as number) })
    req.on('error', reject)
    req.end()
  })
}

t.test('the client address decides as it does over HTTP', async (t) => {
  const { url, seen } = await guardedApp(t, '127.0.0.1')
  t.equal(await httpStatus(url, '127.0.0.2'), 403, 'HTTP from 127.0.0.2 is refused')
  t.equal(await httpStatus(url, '127.0.0.1'), 200, 'HTTP from 127.0.0.1 is served')

  const outsider = await connectFrom(t, url, '127.0.0.2')
  t.match(await outsider.subscribe({ id: 1, path: '/tasks', snapshot: true }), { type: 'error', id: 1, code: 403, message: 'address 127.0.0.2 may not read tasks' }, 'subscribe is refused like HTTP')
  t.match(await outsider.request('GET', '/tasks'), { type: 'response', status: 403 }, 'a request frame is refused like HTTP')
  outsider.send({ stream: 'tasks', payload: { action: 'list', request_id: 'l' } })
  t.match(await outsider.next((frame) => (frame as { payload?: { request_id?: unknown } }).payload?.request_id === 'l'), { payload: { response_status: 403 } }, 'a channels-api action is refused like HTTP')

  const insider = await connectFrom(t, url, '127.0.0.1', { 'set-cookie': ['a=1', 'b=2'] } as unknown as Record<string, string>)
  t.match(await insider.subscribe({ id: 1, path: '/tasks', snapshot: true }), { type: 'subscribed', data: [{ title: 'first' }] }, 'the allowed address subscribes')
  t.equal(seen.at(-1)?.setCookie, undefined, 'set-cookie, a response header, is not forwarded')
})

t.test('trustProxy: forwarded addresses count exactly as over HTTP', async (t) => {
  const { url, seen } = await guardedApp(t, '203.0.113.9', { trustProxy: '127.0.0.2' })
  const forwarded = { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'app.example', 'user-agent': 'probe/1.0', 'accept-language': 'fr', 'x-api-key': 'k1' }
  t.equal(await httpStatus(url, '127.0.0.2', forwarded), 200, 'HTTP through the trusted proxy is served')
  const http = seen.at(-1)

  const viaProxy = await connectFrom(t, url, '127.0.0.2', forwarded)
  t.match(await viaProxy.subscribe({ id: 1, path: '/tasks' }), { type: 'subscribed' }, 'the socket through the trusted proxy subscribes')
  t.same(seen.at(-1), http, 'the route saw the same ip, host, protocol and headers over both')

  // 127.0.0.1 is not a trusted proxy: its X-Forwarded-For is ignored, over HTTP and over the socket
  t.equal(await httpStatus(url, '127.0.0.1', forwarded), 403)
  const spoofing = await connectFrom(t, url, '127.0.0.1', forwarded)
  t.match(await spoofing.subscribe({ id: 1, path: '/tasks' }), { type: 'error', code: 403, message: 'address 127.0.0.1 may not read tasks' }, 'an untrusted X-Forwarded-For is ignored')
  t.match(await spoofing.request('GET', '/tasks'), { type: 'response', status: 403 })
})
