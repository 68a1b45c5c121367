/**
 * The typed client (lib/client): against a real server over a real socket for
 * what users see, and against a scripted socket for reconnects and the
 * frames a healthy server never sends.
 */
import type { AddressInfo } from 'node:net'
import FakeTimers from '@sinonjs/fake-timers'
import t from 'tap'
import { WebSocket } from 'ws'
import {
  RestLiveClient, RestLiveError, type HttpMethod, type LiveView, type ServerFrame,
  type ViewFrame, type WebSocketConstructor, type WebSocketLike
} from '../lib/client/index.js'
import { tasksFixture } from './helpers/fixture.js'

interface Task {
  id: number
  title: string
  owner_id: number
  done: boolean
}

/** `ws`'s WebSocket with an authorization header, as a browser would send a cookie. */
function authedWebSocket (user: number): WebSocketConstructor {
  return class extends WebSocket {
    constructor (url: string) {
      super(url, { headers: { authorization: `Bearer ${user}` } })
    }
  }
}

/** Resolves with the next change of a view. */
function nextChange<T extends object> (changes: Array<(frame: ViewFrame<T>) => void>): Promise<ViewFrame<T>> {
  return new Promise((resolve) => { changes.push(resolve) })
}

t.test('against a real server', async (t) => {
  const { app, db, table } = await tasksFixture(t)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `ws://127.0.0.1:${(app.server.address() as AddressInfo).port}/ws/subscribe`
  await db(table).insert([{ title: 'a', owner_id: 1 }, { title: 'b', owner_id: 1 }, { title: 'other', owner_id: 2 }])

  const opened: string[] = []
  const live = new RestLiveClient(url, { WebSocket: authedWebSocket(1), onOpen: () => { opened.push('open') } })
  t.teardown(() => { live.close() })
  t.equal(live.status, 'connecting')
  t.equal(live.url, url)

  /** Once every change is re-checked, a request's answer arrives after the broadcasts it caused. */
  async function restList (path = '/tasks'): Promise<Task[]> {
    await app.realtime.settled()
    const response = await live.request<Task[]>('GET', path)
    t.equal(response.status, 200)
    return response.body
  }

  t.test('a list view follows inserts, updates and deletes and equals the REST GET', async (t) => {
    const frames: Array<ViewFrame<Task>> = []
    const tasks = live.subscribe<Task>({ model: table, action: 'list' }, { onChange: (view, frame) => { t.equal(view, tasks); frames.push(frame) } })
    t.equal(await tasks.ready, tasks)
    t.equal(live.status, 'open')
    t.same(opened, ['open'])
    t.same(tasks.rows.map((task) => task.title), ['a', 'b'])
    t.same(await restList(), tasks.rows)

    const created = await live.request<Task>('POST', '/tasks', { title: 'c' })
    t.equal(created.status, 201)
    t.match(created.body, { title: 'c', owner_id: 1, done: false })
    await db(table).where({ id: 1 }).update({ done: true })
    await db(table).where({ id: 2 }).del()
    await db(table).insert({ title: 'not mine', owner_id: 2 })
    const patched = await live.request('PATCH', `/tasks/${created.body.id}`, { title: 'c2' })
    t.equal(patched.status, 200)
    const rest = await restList()
    t.same(rest.map((task) => task.title), ['a', 'c2'])
    t.same(tasks.rows, rest)
    t.same(tasks.byKey.get('1'), { id: 1, title: 'a', owner_id: 1, done: true })
    t.equal(tasks.byKey.get(1), tasks.byKey.get('1'), 'byKey takes the number too')
    t.ok(tasks.byKey.has(1))
    t.notOk(tasks.byKey.has(2), 'deleted')
    t.same([...tasks.byKey.keys()], ['1', String(created.body.id)], 'keys are strings')
    t.same(frames.map((frame) => frame.type === 'broadcast' ? frame.action : frame.type), ['subscribed', 'CREATED', 'UPDATED', 'DELETED', 'UPDATED'])

    const deleted = await live.request('DELETE', `/tasks/${created.body.id}`)
    t.same(deleted, { status: 204, body: null })
    t.same(await restList(), tasks.rows)
    t.equal(tasks.rows.length, 1)

    tasks.unsubscribe()
    t.equal(tasks.active, false)
    tasks.unsubscribe() // twice is harmless
    await db(table).insert({ title: 'after', owner_id: 1 })
    await restList()
    t.equal(frames.length, 6, 'no change reaches an unsubscribed view')
  })

  t.test('a retrieve view holds one instance, null once deleted', async (t) => {
    const [id] = await db(table).insert({ title: 'one', owner_id: 1 }).returning('id').then((rows: Array<{ id: number }>) => rows.map((row) => row.id))
    const changes: Array<(frame: ViewFrame<Task>) => void> = []
    const task = live.subscribe<Task>({ model: table, action: 'retrieve', lookup_by: id as number }, {
      onChange: (_view, frame) => { changes.shift()?.(frame) }
    })
    await task.ready
    t.match(task.instance, { id, title: 'one' })
    let change = nextChange(changes)
    await live.request('PATCH', `/tasks/${id}`, { done: true })
    t.match(await change, { type: 'broadcast', action: 'UPDATED', instance: { done: true } })
    t.equal(task.instance?.done, true)
    change = nextChange(changes)
    await live.request('DELETE', `/tasks/${id}`)
    t.same(await change, { type: 'broadcast', id: task.id, model: table, action: 'DELETED', instance: { id } })
    t.equal(task.instance, null)
    t.same(task.rows, [])
    task.unsubscribe()
  })

  t.test('a path subscription with a query string', async (t) => {
    const done = live.subscribe<Task>({ path: '/tasks?done=true' })
    await done.ready
    t.same(await restList('/tasks?done=true'), done.rows)
    const [row] = await db(table).insert({ title: 'finish me', owner_id: 1 }).returning('*') as Task[]
    await db(table).where({ id: row?.id }).update({ done: true })
    t.same(await restList('/tasks?done=true'), done.rows)
    t.ok(done.byKey.has(row?.id as number), 'moved into the filter')
    done.unsubscribe()
  })

  t.test('requests resolve with any status; error frames reject with their code', async (t) => {
    t.equal((await live.request('GET', '/nowhere')).status, 404)
    t.same(await live.request('HEAD', '/tasks'), { status: 200, body: null }, 'HEAD: the status of the GET, no body')
    t.same(await live.request('HEAD', '/tasks/999999'), { status: 404, body: null })
    const bad = await live.request('POST', '/tasks', { title: '' })
    t.equal(bad.status, 400)
    await t.rejects(live.request('TRACE' as HttpMethod, '/tasks'), { name: 'RestLiveError', code: 400, message: /method/ })

    const errors: RestLiveError[] = []
    const unknown = live.subscribe({ model: 'nope', action: 'list' }, { onError: (err) => { errors.push(err) } })
    await t.rejects(unknown.ready, { code: 404, message: /no realtime route follows model 'nope'/ })
    t.equal(unknown.active, false)
    t.equal(errors[0]?.code, 404)
    t.ok(errors[0] instanceof RestLiveError)
    await t.rejects(live.subscribe({ model: table, action: 'retrieve', lookup_by: 9999 }).ready, { code: 404 })
    await t.rejects(live.subscribe({ model: table, action: 'list', query_params: { done: 'maybe' } }).ready, { code: 400 })
  })

  t.test('credentials come from the upgrade request', async (t) => {
    const anonymous = new RestLiveClient(url, { WebSocket })
    t.teardown(() => { anonymous.close() })
    await t.rejects(anonymous.subscribe({ model: table, action: 'list' }).ready, { code: 401 })
    const other = new RestLiveClient(url, { WebSocket: authedWebSocket(2) })
    t.teardown(() => { other.close() })
    const theirs = other.subscribe<Task>({ model: table, action: 'list' })
    await theirs.ready
    t.same(theirs.rows.map((task) => task.title), ['other', 'not mine'])
  })

  t.test('close() rejects what is still waiting, and ends the client', async (t) => {
    const closing = new RestLiveClient(url, { WebSocket: authedWebSocket(1) })
    const first = closing.subscribe({ model: table, action: 'list' })
    await first.ready
    const pending = closing.request('GET', '/tasks')
    const unacknowledged = closing.subscribe({ model: table, action: 'list', query_params: { done: true } })
    closing.close()
    closing.close() // twice is harmless
    t.equal(closing.status, 'closed')
    await t.rejects(pending, { code: 1000 })
    await t.rejects(unacknowledged.ready, { code: 1000 })
    t.equal(first.active, false)
    await t.rejects(closing.request('GET', '/tasks'), { code: 0, message: /after close/ })
    t.throws(() => closing.subscribe({ path: '/tasks' }), { code: 0, message: /after close/ })
  })

  t.test('the server shutting down closes the socket with 1001', async (t) => {
    const second = await tasksFixture(t)
    const table2 = second.table
    await second.app.listen({ port: 0, host: '127.0.0.1' })
    const port = (second.app.server.address() as AddressInfo).port
    const closes: number[] = []
    let closed: () => void = () => {}
    const closedOnce = new Promise<void>((resolve) => { closed = resolve })
    const client = new RestLiveClient(`ws://127.0.0.1:${port}/ws/subscribe`, { WebSocket: authedWebSocket(1), onClose: (code) => { closes.push(code); closed() } })
    await client.subscribe({ model: table2, action: 'list' }).ready
    await second.app.close()
    await closedOnce
    t.same(closes, [1001])
    t.equal(client.status, 'closed')
  })
})

/** A socket the test plays the server for. */
class ScriptedSocket implements WebSocketLike {
  static made: ScriptedSocket[] = []
  readyState = 0
  readonly sent: Array<Record<string, unknown>> = []
  closedWith: { code?: number, reason?: string } | undefined
  readonly #listeners = new Map<string, Array<(event: never) => void>>()

  constructor (readonly url: string) {
    ScriptedSocket.made.push(this)
  }

  static get last (): ScriptedSocket {
    const socket = ScriptedSocket.made[ScriptedSocket.made.length - 1]
    if (socket === undefined) throw new Error('no socket made yet')
    return socket
  }

  send (data: string): void {
    this.sent.push(JSON.parse(data) as Record<string, unknown>)
  }

  close (code?: number, reason?: string): void {
    this.closedWith = { code, reason }
  }

  addEventListener (type: string, listener: (event: never) => void): void {
    this.#listeners.set(type, [...(this.#listeners.get(type) ?? []), listener])
  }

  #emit (type: string, event: unknown): void {
    for (const listener of this.#listeners.get(type) ?? []) (listener as (event: unknown) => void)(event)
  }

  open (): void {
    this.readyState = 1
    this.#emit('open', undefined)
  }

  receive (frame: ServerFrame<Record<string, unknown>> | string): void {
    this.#emit('message', { data: typeof frame === 'string' ? frame : JSON.stringify(frame) })
  }

  drop (code: number, reason = ''): void {
    this.readyState = 3
    this.#emit('error', undefined)
    this.#emit('close', { code, reason })
  }
}

t.test('against a scripted socket', async (t) => {
  t.beforeEach(() => { ScriptedSocket.made = [] })

  t.test('frames wait for the socket to open', async (t) => {
    const live = new RestLiveClient('ws://scripted', { WebSocket: ScriptedSocket })
    const view = live.subscribe({ model: 'tasks', action: 'list', query_params: { done: [true, false] } })
    const response = live.request('POST', '/tasks', { title: 'x' })
    const socket = ScriptedSocket.last
    t.same(socket.sent, [])
    socket.open()
    t.same(socket.sent, [
      { type: 'subscribe', id: 1, model: 'tasks', action: 'list', query_params: { done: [true, false] }, snapshot: true },
      { type: 'request', id: 2, method: 'POST', path: '/tasks', body: { title: 'x' } }
    ])
    socket.receive({ type: 'response', id: 2, status: 201, body: { id: 1 } })
    t.same(await response, { status: 201, body: { id: 1 } })
    socket.receive({ type: 'subscribed', id: 1 })
    await view.ready
    t.same(view.rows, [], 'a subscribed frame without data is an empty view')
    live.close()
    t.same(socket.closedWith, { code: 1000, reason: 'client closed' })
    socket.drop(1000, 'client closed')
    t.equal(live.status, 'closed')
  })

  t.test('frames nobody waits for', async (t) => {
    const errors: RestLiveError[] = []
    const live = new RestLiveClient('ws://scripted', { WebSocket: ScriptedSocket, onError: (err) => { errors.push(err) } })
    const socket = ScriptedSocket.last
    socket.open()
    socket.receive('not json')
    socket.receive({ type: 'broadcast', id: 99, model: 'tasks', action: 'CREATED', instance: { id: 1 } })
    socket.receive({ type: 'response', id: 99, status: 200, body: null })
    socket.receive({ type: 'unsubscribed', id: 99 })
    socket.receive({ type: 'error', id: null, code: 429, message: 'slow down' })
    socket.receive({ type: 'error', id: 99, code: 404, message: 'no subscription with id 99' })
    t.same(errors.map((err) => err.code), [0, 429, 404])
    t.match(errors[0]?.message, /unreadable frame from the server: not json/)
    live.close()

    const quiet = new RestLiveClient('ws://scripted', { WebSocket: ScriptedSocket })
    ScriptedSocket.last.open()
    ScriptedSocket.last.receive('not json')
    ScriptedSocket.last.receive({ type: 'error', id: null, code: 429, message: 'slow down' })
    t.equal(quiet.status, 'open', 'without onError, stray errors are dropped: the client stays open')
    const answered = quiet.request('GET', '/tasks')
    ScriptedSocket.last.receive({ type: 'response', id: 1, status: 200, body: [] })
    t.same(await answered, { status: 200, body: [] }, 'and keeps answering')
    quiet.close()
  })

  t.test('views: snapshot, broadcasts, resync, custom primary key', async (t) => {
    const live = new RestLiveClient('ws://scripted', { WebSocket: ScriptedSocket })
    const socket = ScriptedSocket.last
    socket.open()
    const list = live.subscribe<{ code: string, n: number }>({ model: 'items', action: 'list' }, { pk: 'code' })
    const one = live.subscribe<{ code: string, n: number }>({ model: 'items', action: 'retrieve', lookup_by: 'a' }, { pk: 'code' })
    socket.receive({ type: 'subscribed', id: list.id, data: [{ code: 'a', n: 1 }, { code: 'b', n: 2 }] })
    socket.receive({ type: 'subscribed', id: one.id, data: { code: 'a', n: 1 } })
    t.same(one.instance, { code: 'a', n: 1 })
    socket.receive({ type: 'broadcast', id: list.id, model: 'items', action: 'CREATED', instance: { code: 'c', n: 3 } })
    socket.receive({ type: 'broadcast', id: list.id, model: 'items', action: 'UPDATED', instance: { code: 'a', n: 10 } })
    socket.receive({ type: 'broadcast', id: list.id, model: 'items', action: 'DELETED', instance: { code: 'b' } })
    t.same(list.rows, [{ code: 'a', n: 10 }, { code: 'c', n: 3 }])
    socket.receive({ type: 'subscribed', id: list.id, data: [{ code: 'z', n: 0 }] })
    t.same(list.rows, [{ code: 'z', n: 0 }], 'a later subscribed frame (after a reconnect) replaces the view')
    socket.receive({ type: 'resync', id: list.id, data: [{ code: 'y', n: 9 }] })
    t.same(list.rows, [{ code: 'y', n: 9 }])
    socket.receive({ type: 'resync', id: one.id, data: null })
    t.equal(one.instance, null)
    socket.receive({ type: 'resync', id: one.id, data: { code: 'a', n: 2 } })
    t.same(one.instance, { code: 'a', n: 2 })
    live.close()
  })

  t.test('unsubscribe before the answer rejects ready and tells the server', async (t) => {
    const live = new RestLiveClient('ws://scripted', { WebSocket: ScriptedSocket })
    const socket = ScriptedSocket.last
    socket.open()
    const view = live.subscribe({ path: '/tasks' })
    view.unsubscribe()
    await t.rejects(view.ready, { code: 0, message: /unsubscribed before the server answered/ })
    t.same(socket.sent, [{ type: 'subscribe', id: 1, path: '/tasks', snapshot: true }, { type: 'unsubscribe', id: 1 }])
    live.close()
  })

  t.test('without reconnect, a dropped socket ends the client', async (t) => {
    const closes: Array<[number, string]> = []
    const live = new RestLiveClient('ws://scripted', { WebSocket: ScriptedSocket, onClose: (code, reason) => { closes.push([code, reason]) } })
    const socket = ScriptedSocket.last
    const queued = live.request('GET', '/tasks')
    const view = live.subscribe({ path: '/tasks' })
    socket.drop(1006)
    t.same(closes, [[1006, '']])
    t.equal(live.status, 'closed')
    await t.rejects(queued, { code: 1006 })
    await t.rejects(view.ready, { code: 1006 })
    t.equal(view.active, false)
    t.equal(ScriptedSocket.made.length, 1)
  })

  t.test('with reconnect, views are re-subscribed and requests not yet sent go out', async (t) => {
    // the reconnect waits are the client's setTimeout: the test moves the clock instead of waiting
    const clock = FakeTimers.install({ toFake: ['setTimeout', 'clearTimeout'] })
    t.teardown(() => { clock.uninstall() })
    const opens: number[] = []
    const errors: RestLiveError[] = []
    const live = new RestLiveClient('ws://scripted', { WebSocket: ScriptedSocket, reconnect: 5, onOpen: () => { opens.push(ScriptedSocket.made.length) } })
    const first = ScriptedSocket.last
    first.open()
    const kept = live.subscribe<{ id: number }>({ path: '/tasks' })
    const refused = live.subscribe({ path: '/tasks/1' }, { onError: (err) => { errors.push(err) } })
    const dropped = live.subscribe({ path: '/tasks?done=true' })
    first.receive({ type: 'subscribed', id: kept.id, data: [{ id: 1 }] })
    first.receive({ type: 'subscribed', id: refused.id, data: { id: 1 } })
    await kept.ready
    const inFlight = live.request('GET', '/tasks')
    first.drop(1001, 'server shutting down')
    await t.rejects(inFlight, { code: 1001, message: /1001 server shutting down/ })
    t.equal(live.status, 'connecting')
    dropped.unsubscribe() // while disconnected: nothing to send
    const queued = live.request('DELETE', '/tasks/1')

    clock.tick(4)
    t.equal(ScriptedSocket.last, first, 'not before the reconnect delay')
    clock.tick(1)
    const second = ScriptedSocket.last
    t.not(second, first)
    t.equal(second.url, 'ws://scripted')
    second.drop(1006) // the first attempt fails: the wait doubles
    clock.tick(9)
    t.equal(ScriptedSocket.last, second, 'the second wait is twice the first')
    clock.tick(1)
    const third = ScriptedSocket.last
    t.not(third, second)
    third.open()
    t.same(opens, [1, 3])
    t.same(third.sent, [
      { type: 'subscribe', id: kept.id, path: '/tasks', snapshot: true },
      { type: 'subscribe', id: refused.id, path: '/tasks/1', snapshot: true },
      { type: 'request', id: 5, method: 'DELETE', path: '/tasks/1' }
    ])
    third.receive({ type: 'subscribed', id: kept.id, data: [{ id: 2 }] })
    t.same(kept.rows, [{ id: 2 }], 'the fresh snapshot replaces the view')
    third.receive({ type: 'error', id: refused.id, code: 404, message: 'No tasks instance with id 1' })
    t.same(errors.map((err) => err.code), [404])
    t.equal(refused.active, false)
    third.receive({ type: 'response', id: 5, status: 204, body: null })
    t.same(await queued, { status: 204, body: null })

    third.drop(1006)
    live.close() // while waiting to reconnect
    clock.runAll()
    t.equal(ScriptedSocket.made.length, 3, 'no reconnect after close()')
    t.equal(kept.active, false)
  })

  t.test('reconnect: true waits a second', async (t) => {
    const live = new RestLiveClient('ws://scripted', { WebSocket: ScriptedSocket, reconnect: true })
    ScriptedSocket.last.drop(1006)
    t.equal(live.status, 'connecting')
    live.close()
    t.equal(live.status, 'closed')
  })

  t.test('the WebSocket defaults to globalThis.WebSocket', async (t) => {
    const global = globalThis as { WebSocket?: unknown }
    const saved = Object.getOwnPropertyDescriptor(global, 'WebSocket')
    t.teardown(() => {
      if (saved === undefined) delete global.WebSocket
      else Object.defineProperty(global, 'WebSocket', saved)
    })
    Object.defineProperty(global, 'WebSocket', { value: ScriptedSocket, configurable: true, writable: true })
    const live = new RestLiveClient('ws://scripted')
    t.equal(ScriptedSocket.made.length, 1)
    live.close()
    delete global.WebSocket
    t.throws(() => new RestLiveClient('ws://scripted'), { name: 'TypeError', message: /pass one as options.WebSocket/ })
  })
})

// types only: a view's handlers see the row type
export type TaskView = LiveView<Task>
