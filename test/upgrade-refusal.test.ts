/**
 * Upgrades refused by a hook that runs before @fastify/websocket's own (an auth
 * hook registered before the plugin, as the docs recommend) release their
 * sockets: no descriptor is kept, and app.close() resolves.
 */
import { once } from 'node:events'
import { readdirSync } from 'node:fs'
import type { Socket } from 'node:net'
import Fastify from 'fastify'
import t from 'tap'
import { WebSocket } from 'ws'
import restLive from '../lib/index.js'
import { sqlite } from './helpers/db.js'

const REFUSALS = 100

function openDescriptors (): number {
  return readdirSync('/proc/self/fd').length
}

/** Resolves with `value`, or rejects after `ms` saying what never happened. */
async function within<T> (ms: number, what: string, value: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`${what} did not happen within ${ms} ms`)) }, ms) })
  try {
    return await Promise.race([value, late])
  } finally {
    clearTimeout(timer)
  }
}

t.test('refused upgrades release their sockets', async (t) => {
  const db = sqlite()
  t.teardown(async () => { await db.destroy() })
  const app = Fastify()
  app.addHook('onRequest', async (request, reply) => {
    if (request.headers.authorization === undefined) await reply.code(401).send({ message: 'log in first' })
  })
  await app.register(restLive, { knex: db })
  const closed: Array<Promise<unknown>> = []
  app.server.on('connection', (socket: Socket) => { closed.push(once(socket, 'close')) })
  const url = (await app.listen({ port: 0, host: '127.0.0.1' })).replace(/^http/, 'ws')
  const baseline = openDescriptors()

  for (let i = 0; i < REFUSALS; i++) {
    const socket = new WebSocket(`${url}/ws/subscribe`)
    const [err] = await once(socket, 'error') as [Error]
    t.equal(err.message, 'Unexpected server response: 401', `upgrade ${i + 1} refused`)
  }
  t.equal(closed.length, REFUSALS, 'each upgrade had its own connection')
  await within(5000, 'the server closing every refused socket', Promise.all(closed))
  t.equal(openDescriptors(), baseline, 'descriptors are back to baseline')

  const accepted = new WebSocket(`${url}/ws/subscribe`, { headers: { authorization: 'Bearer 1' } })
  await once(accepted, 'open')
  t.equal(accepted.readyState, WebSocket.OPEN, 'an authorised upgrade is still accepted')
  const goingAway = once(accepted, 'close')
  await within(5000, 'app.close()', app.close())
  await goingAway
})
