import t from 'tap'
import { WebSocket } from 'ws'
import { buildTasksApp } from './helpers/app.js'
import { createTasksTable, sqlite, uniqueName } from './helpers/db.js'

interface Frame { type: string, id?: unknown, action?: string, data?: unknown, instance?: { id: number, title: string } }

t.test('a client that stops reading is not buffered without bound: its broadcasts pause, then a resync brings it up to date', async (t) => {
  const db = sqlite()
  const table = uniqueName('tasks')
  await createTasksTable(db, table)
  await db(table).insert([{ title: 'start', owner_id: 1 }, { title: 'doomed', owner_id: 1 }])
  const { app } = await buildTasksApp({ db, table, plugin: { maxBufferedBytes: 64 * 1024 } })
  t.teardown(async () => { await app.close(); await db.destroy() })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })

  const socket = new WebSocket(address.replace('http', 'ws') + '/ws/subscribe', { headers: { authorization: 'Bearer 1' } })
  const frames: Frame[] = []
  socket.on('message', (data) => { frames.push(JSON.parse(String(data)) as Frame) })
  await new Promise((resolve) => socket.once('open', resolve))
  socket.send(JSON.stringify({ type: 'subscribe', id: 'all', model: table, action: 'list', snapshot: true }))
  socket.send(JSON.stringify({ type: 'subscribe', id: 'two', model: table, action: 'retrieve', lookup_by: 2 }))
  while (frames.filter((frame) => frame.type === 'subscribed').length < 2) await new Promise((resolve) => setTimeout(resolve, 5))

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
  const deadline = Date.now() + 20000
  while (frames.filter((frame) => frame.type === 'resync').length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  const resync = frames.find((frame) => frame.type === 'resync' && frame.id === 'all')
  t.ok(resync, 'a resync frame arrives once the socket drains')
  t.same(frames.find((frame) => frame.type === 'resync' && frame.id === 'two'), { type: 'resync', id: 'two', data: null }, 'a retrieve whose instance went away is resynced to null')
  t.equal(app.realtime.stats().resyncsSent, 2)
  const view = (resync?.data ?? []) as Array<{ id: number, title: string }>
  t.same(view.map((row) => row.id), [1, (last[0] as { id: number }).id], 'the resync carries the whole current view')
  t.match(view[0]?.title, /^59:/, 'with the latest version of each row')

  // live again afterwards
  const before = frames.length
  await db(table).where({ id: 1 }).update({ title: 'after' })
  const liveDeadline = Date.now() + 5000
  while (!frames.slice(before).some((frame) => frame.type === 'broadcast') && Date.now() < liveDeadline) await new Promise((resolve) => setTimeout(resolve, 10))
  t.same(frames.slice(before).find((frame) => frame.type === 'broadcast')?.instance?.title, 'after')
  socket.close()
})

t.test('a client that disconnects while congested is simply forgotten', async (t) => {
  const db = sqlite()
  const table = uniqueName('tasks')
  await createTasksTable(db, table)
  await db(table).insert({ title: 'start', owner_id: 1 })
  const { app } = await buildTasksApp({ db, table, plugin: { maxBufferedBytes: 64 * 1024 } })
  t.teardown(async () => { await app.close(); await db.destroy() })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  const socket = new WebSocket(address.replace('http', 'ws') + '/ws/subscribe', { headers: { authorization: 'Bearer 1' } })
  const subscribed = new Promise((resolve) => socket.once('message', resolve))
  await new Promise((resolve) => socket.once('open', resolve))
  socket.send(JSON.stringify({ type: 'subscribe', id: 'all', model: table, action: 'list' }))
  await subscribed
  const raw = (socket as unknown as { _socket: { pause: () => void } })._socket
  raw.pause()
  const big = 'x'.repeat(256 * 1024)
  for (let i = 0; i < 40; i++) {
    await db(table).where({ id: 1 }).update({ title: `${i}:${big}` })
    await app.realtime.settled()
  }
  const resyncsBefore = app.realtime.stats().resyncsSent
  socket.terminate()
  while (app.realtime.stats().connections > 0) await new Promise((resolve) => setTimeout(resolve, 10))
  await new Promise((resolve) => setTimeout(resolve, 100)) // past the drain watcher's next look
  t.equal(app.realtime.stats().subscriptions, 0)
  t.equal(app.realtime.stats().resyncsSent, resyncsBefore, 'nothing is resynced to a closed socket')
})
