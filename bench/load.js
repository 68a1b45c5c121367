/**
 * The load generator (a separate process): opens N WebSocket clients speaking
 * each system's protocol with the plain `ws` client (so client cost is the
 * same for every system), subscribes them, and counts deliveries.
 *
 * Commands: connect { system, port, n, owners: 'same'|'distinct', path? } → { connected }
 *           expect { total, deadlineMs, latency? } → { t1, count, latencies? }
 *           close
 */
import WebSocket from 'ws'
import { serveCommands } from './ipc.js'

const now = () => Number(process.hrtime.bigint())
let clients = []
let count = 0
let target = Infinity
let onTarget = () => {}
let latencies = null

function delivered (text) {
  if (latencies !== null) {
    const match = /"t(\d{6,})"/.exec(text)
    if (match) latencies.push((now() - Number(match[1])) / 1e6)
  }
  if (++count >= target) onTarget()
}

/** One client per system; resolves once it is subscribed (as far as the protocol says). */
function client (system, port, owner, path) {
  return new Promise((resolve, reject) => {
    let ws
    const fail = (err) => reject(err)
    if (system === 'ours') {
      ws = new WebSocket(`ws://127.0.0.1:${port}/ws/subscribe`, { headers: { authorization: `Bearer ${owner ?? 1}` } })
      ws.subscribed = null
      ws.subscribe = (subscribePath) => new Promise((resolve, reject) => {
        ws.subscribed = { resolve, reject }
        ws.send(JSON.stringify({ type: 'subscribe', id: 1, path: subscribePath }))
      })
      ws.on('open', () => {
        if (path === null) resolve(ws)
        else ws.subscribe(path).then(() => resolve(ws), reject)
      })
      ws.on('message', (data) => {
        const text = data.toString()
        if (text.startsWith('{"type":"broadcast"')) delivered(text)
        else if (text.startsWith('{"type":"subscribed"')) ws.subscribed?.resolve()
        else if (text.startsWith('{"type":"error"')) ws.subscribed?.reject(new Error(text))
      })
    } else if (system === 'ws') {
      ws = new WebSocket(`ws://127.0.0.1:${port}/`)
      ws.on('open', () => resolve(ws))
      ws.on('message', (data) => delivered(data.toString()))
    } else if (system === 'socketio' || system === 'feathers') {
      // Engine.IO v4 / Socket.IO v5 protocol over a bare WebSocket
      const query = owner === null ? '' : `&owner=${owner}`
      ws = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket${query}`)
      ws.on('message', (data) => {
        const text = data.toString()
        if (text.startsWith('42')) delivered(text)
        else if (text === '2') ws.send('3')
        else if (text.startsWith('0{')) ws.send('40')
        else if (text.startsWith('40')) resolve(ws)
      })
    } else if (system === 'mercurius') {
      ws = new WebSocket(`ws://127.0.0.1:${port}/graphql`, 'graphql-transport-ws')
      ws.on('open', () => ws.send('{"type":"connection_init"}'))
      ws.on('message', (data) => {
        const text = data.toString()
        if (text.startsWith('{"id"') || text.includes('"type":"next"')) { delivered(text); return }
        const message = JSON.parse(text)
        if (message.type === 'connection_ack') {
          const args = owner === null ? '' : `(owner: ${owner})`
          ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: `subscription { taskCreated${args} { id title owner_id done } }` } }))
          resolve(ws)
        } else if (message.type === 'ping') ws.send('{"type":"pong"}')
      })
    }
    ws.on('error', fail)
  })
}

async function handle (message) {
  switch (message.cmd) {
    case 'connect': {
      // owners: 'all' (no filter), 'one' (everyone filters on owner 1), 'distinct' (client i on owner i)
      const { system, port, n, owners, path = null } = message
      const batch = 200
      for (let i = 0; i < n; i += batch) {
        const opening = []
        for (let j = i; j < Math.min(n, i + batch); j++) opening.push(client(system, port, owners === 'distinct' ? j + 1 : owners === 'one' ? 1 : null, path))
        clients.push(...await Promise.all(opening))
      }
      return { connected: clients.length }
    }
    case 'subscribe': {
      for (let i = 0; i < clients.length; i += 200) await Promise.all(clients.slice(i, i + 200).map((ws) => ws.subscribe(message.path)))
      return { subscribed: clients.length }
    }
    case 'expect': {
      count = 0
      target = message.total
      latencies = message.latency ? [] : null
      process.send({ seq: message.seq, armed: true, partial: true })
      const result = await new Promise((resolve) => {
        const timer = setTimeout(() => resolve({ t1: now(), timedOut: true }), message.deadlineMs)
        onTarget = () => { clearTimeout(timer); resolve({ t1: now(), timedOut: false }) }
      })
      onTarget = () => {}
      target = Infinity
      return { ...result, count, latencies }
    }
    case 'close':
      for (const ws of clients) ws.terminate()
      clients = []
      return {}
    default:
      throw new Error(`unknown command ${message.cmd}`)
  }
}

serveCommands(handle)
