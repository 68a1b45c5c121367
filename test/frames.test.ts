/**
 * Garbage from a client is answered, never fatal: every malformed frame gets an
 * `error` 400 that says what was expected, and the socket keeps working.
 */
import t from 'tap'
import { tasksFixture } from './helpers/fixture.js'
import { TestClient, type Frame } from './helpers/ws-client.js'

t.test('malformed frames get error 400 and the socket stays usable', async (t) => {
  const { app, db, table } = await tasksFixture(t)
  await db(table).insert({ title: 'a', owner_id: 1 })
  const client = await TestClient.connect(app, { authorization: 'Bearer 1' })

  /** Sends raw text (or a value to JSON-encode) and returns the error frame it earns. */
  async function rejected (frame: unknown): Promise<Frame> {
    const answer = client.next((f) => f.type === 'error')
    client.send(typeof frame === 'string' ? frame : JSON.stringify(frame))
    const error = await answer
    t.equal(error.code, 400, `400 for ${typeof frame === 'string' ? frame : JSON.stringify(frame)}`)
    t.type(error.message, 'string')
    return error
  }

  t.test('not JSON', async (t) => {
    const error = await rejected('{"type": "subscribe", ')
    t.equal(error.id, null, 'no id could be read')
    t.match(error.message, /not valid JSON/)
    t.match(error.message, /expected an object like/)
  })

  t.test('prototype poisoning: a "__proto__" key, or a "constructor" holding a "prototype", anywhere in a frame', async (t) => {
    for (const text of [
      // a request body: Fastify's own body parser would refuse it too, but the frame never gets that far
      '{"type":"request","id":"p1","method":"POST","path":"/x","body":{"__proto__":{"admin":true}}}',
      '{"type":"request","id":"p2","method":"POST","path":"/x","body":[{"constructor":{"prototype":{"admin":true}}}]}',
      '{"type":"subscribe","id":"p3","path":"/x","\\u005f_proto__":{"snapshot":true}}',
      '{"stream":"questions","payload":{"action":"create","data":{"__proto__":{}}}}'
    ]) {
      const error = await rejected(text)
      t.equal(error.id, null, 'refused before any of it is read')
      t.equal(error.message, 'frame has a "__proto__" key, or a "constructor" holding a "prototype": refused (prototype poisoning); rename the field')
    }
    // the same words as plain values are nothing to refuse
    const fine = await client.ask({ type: 'request', id: 'p5', method: 'GET', path: '/__proto__?constructor=prototype' })
    t.equal(fine.type, 'response')
  })

  t.test('JSON that is not an object', async (t) => {
    for (const value of ['[1,2,3]', '42', '"subscribe"', 'null']) {
      const error = await rejected(value)
      t.equal(error.id, null)
      t.match(error.message, /must be a JSON object with a "type"/)
      t.match(error.message, /"subscribe", "unsubscribe", "request"/, 'quotes the frame types it expects')
    }
  })

  t.test('missing type', async (t) => {
    const error = await rejected({ id: 7, model: table, action: 'list' })
    t.equal(error.id, 7, 'repeats the id')
    t.match(error.message, /unknown frame type undefined/)
    t.match(error.message, /expected one of "subscribe", "unsubscribe", "request"/)
  })

  t.test('unknown type', async (t) => {
    const error = await rejected({ type: 'subscrib', id: 'abc' })
    t.equal(error.id, 'abc')
    t.match(error.message, /unknown frame type "subscrib"/)
    t.match(error.message, /expected one of/)
  })

  t.test('non-string type', async (t) => {
    const error = await rejected({ type: 3, id: 1 })
    t.match(error.message, /unknown frame type 3/)
  })

  t.test('unknown extra field is named', async (t) => {
    const error = await rejected({ type: 'subscribe', id: 8, model: table, action: 'list', filter: 'x' })
    t.equal(error.id, 8)
    t.match(error.message, /unknown field "filter"/)
    t.match(error.message, /allowed: type, id, model/)
    const other = await rejected({ type: 'unsubscribe', id: 9, model: table })
    t.equal(other.id, 9)
    t.match(other.message, /unknown field "model" in unsubscribe frame/)
  })

  t.test('wrong field types name the field', async (t) => {
    const model = await rejected({ type: 'subscribe', id: 10, model: 5, action: 'list' })
    t.equal(model.id, 10)
    t.match(model.message, /invalid "model" in subscribe frame/)
    const action = await rejected({ type: 'subscribe', id: 11, model: table, action: 'create' })
    t.match(action.message, /invalid "action"/)
    const snapshot = await rejected({ type: 'subscribe', id: 12, model: table, action: 'list', snapshot: 'yes' })
    t.match(snapshot.message, /invalid "snapshot"/)
    const kwargs = await rejected({ type: 'subscribe', id: 13, model: table, action: 'list', view_kwargs: { owner: { nested: true } } })
    t.match(kwargs.message, /invalid "view_kwargs.owner"/, 'nested fields are named by their path')
    const method = await rejected({ type: 'request', id: 14, method: 'TRACE', path: '/tasks' })
    t.match(method.message, /invalid "method" in request frame/)
    const path = await rejected({ type: 'request', id: 15, method: 'GET', path: 'tasks' })
    t.match(path.message, /invalid "path" in request frame/)
  })

  t.test('an id of the wrong type is not repeated', async (t) => {
    const floaty = await rejected({ type: 'unsubscribe', id: 1.5 })
    t.equal(floaty.id, null)
    t.match(floaty.message, /invalid "id"/)
    const missing = await rejected({ type: 'unsubscribe' })
    t.equal(missing.id, null)
    t.match(missing.message, /invalid "id"/)
    const objectId = await rejected({ type: 'unsubscribe', id: { a: 1 } })
    t.equal(objectId.id, null)
    const empty = await rejected({ type: 'unsubscribe', id: '' })
    t.equal(empty.id, '', 'a string id is repeated even when it is invalid')
  })

  t.test('subscribe with both path and model', async (t) => {
    const error = await rejected({ type: 'subscribe', id: 20, path: '/tasks', model: table })
    t.equal(error.id, 20)
    t.match(error.message, /both "path" and "model"/)
    const query = await rejected({ type: 'subscribe', id: 21, path: '/tasks', query_params: { done: true } })
    t.match(query.message, /both "path" and "query_params"/)
  })

  t.test('subscribe without model or action', async (t) => {
    const noModel = await rejected({ type: 'subscribe', id: 22, action: 'list' })
    t.equal(noModel.id, 22)
    t.match(noModel.message, /needs "model" and "action"/)
    t.match(noModel.message, /or a "path"/)
    const noAction = await rejected({ type: 'subscribe', id: 23, model: table })
    t.match(noAction.message, /needs "model" and "action"/)
  })

  t.test('retrieve without lookup_by', async (t) => {
    const error = await rejected({ type: 'subscribe', id: 24, model: table, action: 'retrieve' })
    t.equal(error.id, 24)
    t.match(error.message, /action "retrieve" needs "lookup_by"/)
  })

  t.test('list with lookup_by', async (t) => {
    const error = await rejected({ type: 'subscribe', id: 25, model: table, action: 'list', lookup_by: 1 })
    t.equal(error.id, 25)
    t.match(error.message, /action "list" takes no "lookup_by"/)
  })

  t.test('binary frame', async (t) => {
    const answer = client.next((f) => f.type === 'error')
    client.socket.send(Buffer.from(JSON.stringify({ type: 'subscribe', id: 26, model: table, action: 'list' })), { binary: true })
    const error = await answer
    t.equal(error.code, 400)
    t.match(error.message, /binary frames are not accepted; send JSON text frames/)
  })

  t.test('the socket still works', async (t) => {
    t.equal(client.closed, undefined, 'no garbage closed the socket')
    const sub = await client.subscribe({ id: 'after', model: table, action: 'list', snapshot: true })
    t.same(sub, { type: 'subscribed', id: 'after', data: [{ id: 1, title: 'a', owner_id: 1, done: false }] })
    const res = await client.request('GET', '/tasks/1')
    t.equal(res.status, 200)
    t.equal(client.closed, undefined)
    client.close()
  })
})
