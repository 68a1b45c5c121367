import { once } from 'node:events'
import FakeTimers from '@sinonjs/fake-timers'
import t from 'tap'
import { WebSocket } from 'ws'
import { tasksFixture } from './helpers/fixture.js'
import { eventually } from './helpers/eventually.js'
import { TestClient } from './helpers/ws-client.js'

t.test('a client that stops reading is not buffered without bound: its broadcasts pause, then a resync brings it up to date', async (t) => {
  const { app, db, table } = await tasksFixture(t, { plugin: { maxBufferedBytes: 64 * 1024 }, rows: [{ title: 'start', owner_id: 1 }, { title: 'doomed', owner_id: 1 }] })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })

  const socket = new WebSocket(address.replace('http', 'ws') + '/ws/subscribe', { headers: { authorization: 'Bearer 1' } })
  const client = new TestClient(socket)
  await once(socket, 'open')
  await client.subscribe({ id: 'all', model: table, action: 'list', snapshot: true })
  await client.subscribe({ id: 'two', model: table, action: 'retrieve', lookup_by: 2 })

  // stop reading: the kernel buffers fill, then the server's send buffer grows
  const raw = (socket as unknown as { _socket: { pause: () => void, resume: () => void } })._socket
  raw.pause()
  const big = 'x'.repeat(256 * 1024)
  for (let i = 0; i < 60; i++) {
    await db(table).where({ id: 1 }).update({ title: `${i}:${big}` })
    await app.realtime.settled()
  }
  await db(table).where({ id: 2 }).del()
  const last = await db(table).insert({ title: 'last', owner_id: 1 }).returning('*')
  await app.realtime.settled()
  const sentBeforeResume = app.realtime.stats().broadcastsSent
  t.ok(sentBeforeResume < 61, `broadcasts stopped once the socket was congested (${sentBeforeResume} of 61 sent)`)

  raw.resume()
  // the drain is noticed on its own; these wait for its frames, with a failure after 20 s
  const resync = await client.next((frame) => frame.type === 'resync' && frame.id === 'all', 20_000)
  t.ok(resync, 'a resync frame arrives once the socket drains')
  t.same(await client.next((frame) => frame.type === 'resync' && frame.id === 'two', 20_000), { type: 'resync', id: 'two', data: null }, 'a retrieve whose instance went away is resynced to null')
  t.equal(app.realtime.stats().resyncsSent, 2)
  const view = resync.data as Array<{ id: number, title: string }>
  t.same(view.map((row) => row.id), [1, (last[0] as { id: number }).id], 'the resync carries the whole current view')
  t.match(view[0]?.title, /^59:/, 'with the latest version of each row')

  // live again afterwards
  const before = client.frames.length
  await db(table).where({ id: 1 }).update({ title: 'after' })
  const live = await client.next((frame) => frame.type === 'broadcast' && client.frames.indexOf(frame) >= before)
  t.same((live.instance as { title: string }).title, 'after')
  client.close()
})

t.test('a client that disconnects while congested is simply forgotten', async (t) => {
  const { app, db, table } = await tasksFixture(t, { plugin: { maxBufferedBytes: 64 * 1024 }, rows: [{ title: 'start', owner_id: 1 }] })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  const socket = new WebSocket(address.replace('http', 'ws') + '/ws/subscribe', { headers: { authorization: 'Bearer 1' } })
  const client = new TestClient(socket)
  await once(socket, 'open')
  await client.subscribe({ id: 'all', model: table, action: 'list' })
  // the drain check is a timer: on this clock it fires only when the test says
  const clock = FakeTimers.install({ toFake: ['setTimeout', 'clearTimeout'] })
  t.teardown(() => { clock.uninstall() })
  const raw = (socket as unknown as { _socket: { pause: () => void } })._socket
  raw.pause()
  const big = 'x'.repeat(256 * 1024)
  for (let i = 0; i < 40; i++) {
    await db(table).where({ id: 1 }).update({ title: `${i}:${big}` })
    await app.realtime.settled()
  }
  const resyncsBefore = app.realtime.stats().resyncsSent
  t.ok(app.realtime.stats().resyncsSent === resyncsBefore && resyncsBefore === 0, 'congested, and not yet drained')
  socket.terminate()
  await eventually(() => app.realtime.stats().connections === 0)
  clock.tick(1000) // well past any drain check still pending
  t.equal(app.realtime.stats().subscriptions, 0)
  t.equal(app.realtime.stats().resyncsSent, resyncsBefore, 'nothing is resynced to a closed socket')
})
