// Section 8: REST over the socket, from Node. Start 07-browser.js first, then
// `node 08-request-frames.js` (SERVER_URL overrides the address).
import { RestLiveClient } from 'fastify-rest-live/client'
import { WebSocket } from 'ws'   // Node 20 has no global WebSocket (Node 22 does)

const live = new RestLiveClient(process.env.SERVER_URL ?? 'ws://127.0.0.1:3000/ws/subscribe', { WebSocket })

// #region request-frames
const created = await live.request('POST', '/tasks', { title: 'write the tutorial' })
console.log(created.status) // 201
console.log(created.body)   // { id: 12, title: 'write the tutorial', done: false }

await live.request('PATCH', `/tasks/${created.body.id}`, { done: true })
await live.request('DELETE', `/tasks/${created.body.id}`)
// #endregion request-frames
console.log(`created ${JSON.stringify(created.body)} (${created.status}), completed and deleted it`)
live.close()
