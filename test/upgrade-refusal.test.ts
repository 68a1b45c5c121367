/**
 * Upgrades refused by a hook that runs before @fastify/websocket's own (an auth
 * hook registered before the plugin, as the docs recommend) release their
 * sockets: no descriptor is kept, and app.close() resolves.
 */
import { once } from 'node:events'
import { readdirSync } from 'node:fs'
import type { Socket } from 'node:net'
import t from 'tap'
import { WebSocket } from 'ws'
import { appFixture } from './helpers/fixture.js'

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
  const closed: Array<Promise<unknown>> = []
  const { app, url: address } = await appFixture(t, {
    before: (app) => {
      app.addHook('onRequest', async (request, reply) => {
        if (request.headers.authorization === undefined) await reply.code(401).send({ message: 'log in first' })
      })
      app.server.on('connection', (socket: Socket) => { closed.push(once(socket, 'close')) })
    },
    listen: true
  })
  const url = String(address).replace(/^http/, 'ws')
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
