/**
 * What the server holds for one socket is bounded, answers included: a client
 * that sends frames and never reads their answers is simply not read any
 * more (after MAX_FRAMES_IN_FLIGHT frames being served, or once more than
 * maxBufferedBytes are queued), and gets every answer once it reads again.
 */
import type { Socket } from 'node:net'
import Fastify from 'fastify'
import t from 'tap'
import { WebSocket } from 'ws'
import restLive from '../lib/index.js'
import { MAX_FRAMES_IN_FLIGHT } from '../lib/ws/connection.js'
import { tasksFixture } from './helpers/fixture.js'
import { sqlite } from './helpers/db.js'
import { TestClient } from './helpers/ws-client.js'

const MAX_BUFFERED = 64 * 1024

t.test('a client that sends requests and never reads holds a bounded amount of server memory, and loses no answer', async (t) => {
  const { app } = await tasksFixture(t, { plugin: { maxBufferedBytes: MAX_BUFFERED, maxFramesPerSecond: 100_000 }, rows: [{ title: 'x'.repeat(64 * 1024), owner_id: 1, done: false }] })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  const socket = new WebSocket(`${address.replace('http', 'ws')}/ws/subscribe`, { headers: { authorization: 'Bearer 1' } })
  await new Promise((resolve) => socket.once('open', resolve))
  const client = new TestClient(socket)
  t.teardown(() => { client.close() })
  const answerBytes = JSON.stringify((await client.request('GET', '/tasks/1')).body).length
  client.frames.length = 0 // (kept small: 300 answers of 64 KiB follow)

  // the server's side of the socket: how much it ever queued, and when it stopped reading
  const server = [...app.websocketServer.clients][0] as WebSocket
  const send = server.send.bind(server)
  const pause = server.pause.bind(server)
  let peak = 0
  let sent = 0
  let pauses = 0
  const frames = 300
  let stalled: () => void = () => {}
  const blocked = new Promise<void>((resolve) => { stalled = resolve })
  // the server stops reading because the client does not read (or, without any limit, queues every answer)
  const checkStalled = (): void => { if ((server.isPaused && server.bufferedAmount > MAX_BUFFERED) || sent === frames) stalled() }
  // the callback passed on: the server's writer learns of the drain from it
  server.send = ((data: string, callback: (err?: Error) => void) => {
    send(data, callback)
    sent++
    peak = Math.max(peak, server.bufferedAmount)
    checkStalled()
  }) as WebSocket['send']
  server.pause = () => {
    pause()
    pauses++
    checkStalled()
  }

  const statuses = new Map<unknown, unknown>()
  let allAnswered: () => void = () => {}
  const answered = new Promise<void>((resolve) => { allAnswered = resolve })
  socket.on('message', (data) => {
    const frame = JSON.parse(String(data)) as { id: unknown, status: unknown }
    statuses.set(frame.id, frame.status)
    if (statuses.size === frames) allAnswered()
  })
  const raw = (socket as unknown as { _socket: Socket })._socket
  raw.pause()
  raw.cork() // one write, so the server reads many frames at once
  for (let i = 0; i < frames; i++) client.send({ type: 'request', id: `m${i}`, method: 'GET', path: '/tasks/1' })
  raw.uncork()
  await blocked

  raw.resume()
  await answered
  t.ok([...statuses.values()].every((status) => status === 200), `all ${frames} requests answered`)
  t.ok(pauses > 0, 'the server stopped reading the socket')
  const bound = MAX_BUFFERED + (MAX_FRAMES_IN_FLIGHT + 1) * answerBytes
  t.ok(peak <= bound, `the server never queued more than maxBufferedBytes plus the answers in flight (${peak} <= ${bound} bytes, of ${frames * answerBytes} asked for)`)
  t.equal(server.isPaused, false, 'reading again once drained')
})

t.test('frames beyond MAX_FRAMES_IN_FLIGHT wait unread, and are all served', async (t) => {
  const db = sqlite()
  const app = Fastify()
  await app.register(restLive, { knex: db, maxFramesPerSecond: 100_000 })
  t.teardown(async () => { await app.close(); await db.destroy() })
  // every request waits at a gate, opened once the server has stopped reading the socket and
  // MAX_FRAMES_IN_FLIGHT requests run (or, without any limit, once all of them run)
  const count = MAX_FRAMES_IN_FLIGHT * 3
  let running = 0
  let most = 0
  let paused = false
  let open: () => void = () => {}
  const gate = new Promise<void>((resolve) => { open = resolve })
  app.post('/slow', async () => {
    most = Math.max(most, ++running)
    if ((paused && running === MAX_FRAMES_IN_FLIGHT) || running === count) open()
    await gate
    running--
    return { ok: true }
  })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  const socket = new WebSocket(`${address.replace('http', 'ws')}/ws/subscribe`)
  await new Promise((resolve) => socket.once('open', resolve))
  const client = new TestClient(socket)
  t.teardown(() => { client.close() })
  const server = [...app.websocketServer.clients][0] as WebSocket
  const pause = server.pause.bind(server)
  server.pause = () => {
    pause()
    paused = true
  }
  const raw = (socket as unknown as { _socket: Socket })._socket
  const answered = Array.from({ length: count }, (_, i) => client.next((frame) => frame.id === i))
  raw.cork()
  for (let i = 0; i < count; i++) client.send({ type: 'request', id: i, method: 'POST', path: '/slow', body: {} })
  raw.uncork()
  const answers = await Promise.all(answered)
  t.ok(answers.every((frame) => frame.status === 200), `all ${count} answered`)
  t.equal(most, MAX_FRAMES_IN_FLIGHT, `at most ${MAX_FRAMES_IN_FLIGHT} requests of the socket ran at once`)
})
