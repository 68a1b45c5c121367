// Section 13: testing the app over a real socket. `npm test` runs this file (node --test).
// #region setup
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, before, test } from 'node:test'
import { WebSocket } from 'ws'
import { app } from '../app.js'
import { db } from '../db.js'

const alice = { cookie: 'sid=session-alice' }   // what GET /login?as=alice sets (section 9)
const bob = { cookie: 'sid=session-bob' }
let url

before(async () => {
  await db('audit').del()
  await db('tasks').del()
  app.log.level = 'warn'
  const address = await app.listen({ port: 0, host: '127.0.0.1' })   // a real port, chosen by the system
  url = `${address.replace(/^http/, 'ws')}/ws/subscribe`
})
after(async () => {
  await app.close()   // closes the sockets too
  await db.destroy()
})
// #endregion setup

// #region connect
/** Opens a socket as a browser with these headers would, and collects its frames. */
async function connect (headers) {
  const socket = new WebSocket(url, { headers })
  const frames = []
  const waiting = []
  socket.on('message', (data) => {
    const frame = JSON.parse(String(data))
    const waiter = waiting.find((w) => w.predicate(frame))
    if (waiter === undefined) frames.push(frame)
    else waiting.splice(waiting.indexOf(waiter), 1)[0].resolve(frame)
  })
  await once(socket, 'open')
  return {
    frames,
    send: (frame) => socket.send(JSON.stringify(frame)),
    /** The first frame (already here, or still to come) that matches. */
    next: (predicate) => {
      const index = frames.findIndex(predicate)
      if (index !== -1) return Promise.resolve(frames.splice(index, 1)[0])
      return new Promise((resolve) => { waiting.push({ predicate, resolve }) })
    },
    close: () => socket.close()
  }
}
// #endregion connect

// #region created
test('a subscriber sees the task a REST call creates', async () => {
  const client = await connect(alice)
  client.send({ type: 'subscribe', id: 1, model: 'tasks', action: 'list', snapshot: true })
  assert.deepEqual(await client.next((frame) => frame.id === 1), { type: 'subscribed', id: 1, data: [] })

  const response = await app.inject({ method: 'POST', url: '/tasks', headers: alice, payload: { title: 'write tests' } })
  assert.equal(response.statusCode, 201)

  // The broadcast is on its way (settled() would say it was written); wait for it to arrive.
  const broadcast = await client.next((frame) => frame.type === 'broadcast')
  assert.deepEqual(broadcast, { type: 'broadcast', id: 1, model: 'tasks', action: 'CREATED', instance: response.json() })
  client.close()
})
// #endregion created

// #region nothing-sent
test('an internal_note change and another user\'s task send nothing', async () => {
  const client = await connect(alice)
  client.send({ type: 'subscribe', id: 1, model: 'tasks', action: 'list' })
  await client.next((frame) => frame.id === 1)
  const [task] = await db('tasks').where({ owner_id: 1 })
  await app.inject({ method: 'PATCH', url: `/tasks/${task.id}`, headers: alice, payload: { internal_note: 'hush' } })
  await app.inject({ method: 'POST', url: '/tasks', headers: bob, payload: { title: 'bob\'s' } })

  await app.realtime.settled()                             // 1. every broadcast those writes cause is written
  client.send({ type: 'unsubscribe', id: 'flush' })        // 2. the server answers frames in order, so once
  await client.next((frame) => frame.id === 'flush')       //    this answer is here, any broadcast is too
  assert.deepEqual(client.frames, [])
  client.close()
})
// #endregion nothing-sent

test('no session, no socket', async () => {
  const socket = new WebSocket(url)
  const [error] = await once(socket, 'error')
  assert.match(error.message, /Unexpected server response: 401/)
})
