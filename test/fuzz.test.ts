/**
 * Whatever a client sends, the server answers it as a client mistake (4xx) or
 * serves it, and never fails (500) or logs an error: seeded random native,
 * request and channels-api frames, with hostile strings (Object.prototype
 * names, lone surrogates, control characters), huge numbers, deep nesting and
 * oversized frames, over a real socket to the tasks app.
 *
 * Seeds come from test/helpers/seeds.ts: replay a run with TEST_SEED=<seed
 * printed below>; FUZZ_RUNS changes how many frames each seed sends.
 */
import { Writable } from 'node:stream'
import fc from 'fast-check'
import t from 'tap'
import { WebSocket } from 'ws'
import { tasksFixture } from './helpers/fixture.js'
import { seedsFor } from './helpers/seeds.js'
import { TestClient, type Frame } from './helpers/ws-client.js'

const RUNS = Number(process.env.FUZZ_RUNS ?? 2000)

/** One thing to send: a text frame, or a binary one. */
type Sent = { text: string } | { binary: string }

const protoNames = ['constructor', '__proto__', 'toString', 'valueOf', 'hasOwnProperty', 'isPrototypeOf', 'prototype', '__defineGetter__']
const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((code) => String.fromCharCode(code))
const hostileString = fc.oneof(
  fc.constantFrom(...protoNames, '', ' ', '%', '%zz', '%00', '..', '/', '//', '\\', '\\x y', '\t/x y', '?', '#', '\u0000', '\r\n', '\u2028', 'null', 'undefined', '1e400', 'é', '日本', '😀'),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.string({ unit: fc.oneof(loneSurrogate, fc.constantFrom('a', '/', '%', '\ud83d\ude00')), maxLength: 6 }),
  fc.string({ minLength: 129, maxLength: 300 })
)
const hugeNumber = fc.constantFrom(1e308, -1e308, 2 ** 53 + 2, -(2 ** 63), 1e21, 5e-324, -0, 0.5, 1.5e10)
const number = fc.oneof(fc.integer({ min: -2, max: 6 }), fc.integer(), hugeNumber, fc.double({ noNaN: true, noDefaultInfinity: true }))
const scalar = fc.oneof(hostileString, number, fc.boolean())
const anything = fc.oneof(
  scalar,
  fc.constant(null),
  fc.jsonValue({ maxDepth: 3 }),
  fc.dictionary(hostileString, scalar, { maxKeys: 3 }),
  fc.array(scalar, { maxLength: 3 })
)
const id = fc.oneof(fc.integer({ min: 0, max: 20 }), fc.string({ minLength: 1, maxLength: 4 }), number, hostileString, fc.constant(null), fc.array(fc.integer(), { maxLength: 2 }))

function frames (table: string): fc.Arbitrary<Sent> {
  const paths = fc.oneof(
    fc.constantFrom('/tasks', '/tasks/1', '/tasks/2', '/tasks/3', '/tasks?done=true', '/tasks?done=x', '/tasks/1?x=1', '/', '/ws/subscribe', '/tasks/1/x'),
    hostileString.map((text) => `/${text}`),
    hostileString.map((text) => `/tasks/${text}`),
    hostileString.map((text) => `/tasks?${text}=${text}`)
  )
  const subscribe = fc.record({
    type: fc.constant('subscribe'),
    id,
    model: fc.oneof(fc.constant(table), hostileString, number),
    action: fc.oneof(fc.constantFrom('list', 'retrieve'), hostileString),
    lookup_by: fc.oneof(fc.integer({ min: 1, max: 4 }), number, hostileString, fc.boolean()),
    view_kwargs: fc.oneof(fc.dictionary(fc.oneof(fc.constantFrom('id', 'owner_id', ...protoNames), hostileString), scalar, { maxKeys: 2 }), anything),
    query_params: fc.oneof(fc.dictionary(fc.oneof(fc.constant('done'), hostileString), fc.oneof(scalar, fc.array(scalar, { maxLength: 3 })), { maxKeys: 3 }), anything),
    path: fc.oneof(paths, hostileString),
    snapshot: fc.oneof(fc.boolean(), scalar),
    extra: anything
  }, { requiredKeys: ['type'] })
  const unsubscribe = fc.record({ type: fc.constant('unsubscribe'), id, extra: anything }, { requiredKeys: ['type'] })
  const request = fc.record({
    type: fc.constant('request'),
    id,
    method: fc.oneof(fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'), hostileString),
    path: fc.oneof(paths, hostileString),
    body: fc.oneof(
      fc.record({ title: fc.oneof(hostileString, scalar), done: fc.oneof(fc.boolean(), scalar), owner_id: number }, { requiredKeys: [] }),
      anything
    )
  }, { requiredKeys: ['type'] })
  const otherType = fc.record({ type: fc.oneof(fc.constantFrom(...protoNames), hostileString, number, anything), id }, { requiredKeys: ['type'] })
  const pk = fc.oneof(fc.integer({ min: 1, max: 4 }), number, hostileString, fc.constant(null), anything)
  const channels = fc.record({
    stream: fc.oneof(fc.constant('tasks'), hostileString, anything),
    payload: fc.oneof(
      fc.record({
        action: fc.oneof(fc.constantFrom('list', 'create', 'retrieve', 'update', 'delete', 'subscribe', 'unsubscribe', 'done', ...protoNames), hostileString, number),
        pk,
        data: fc.oneof(
          fc.record({
            action: fc.oneof(fc.constantFrom('create', 'update', 'delete'), hostileString),
            pk,
            page: fc.oneof(fc.integer({ min: 0, max: 3 }), number, hostileString),
            title: hostileString,
            done: fc.boolean()
          }, { requiredKeys: [] }),
          anything
        ),
        request_id: fc.oneof(fc.integer(), hostileString, fc.constant(null), anything)
      }, { requiredKeys: ['action'] }),
      anything
    )
  }, { requiredKeys: [] })
  // mostly well-formed frames with at most one field made hostile, so that most frames get past validation
  const goodId = fc.oneof(fc.integer({ min: 0, max: 40 }), fc.constantFrom('a', 'b', 'c'))
  const goodPk = fc.oneof({ arbitrary: fc.integer({ min: 1, max: 5 }), weight: 4 }, { arbitrary: hostileString, weight: 1 })
  const wellFormed = fc.oneof(
    fc.record({ type: fc.constant('subscribe'), id: goodId, model: fc.constant(table), action: fc.constant('list'), query_params: fc.record({ done: fc.boolean() }), snapshot: fc.boolean() }, { requiredKeys: ['type', 'id', 'model', 'action'] }),
    fc.record({ type: fc.constant('subscribe'), id: goodId, model: fc.constant(table), action: fc.constant('retrieve'), lookup_by: goodPk, snapshot: fc.boolean() }, { requiredKeys: ['type', 'id', 'model', 'action', 'lookup_by'] }),
    fc.record({ type: fc.constant('subscribe'), id: goodId, path: paths, snapshot: fc.boolean() }, { requiredKeys: ['type', 'id', 'path'] }),
    fc.record({ type: fc.constant('unsubscribe'), id: goodId }),
    fc.record({ type: fc.constant('request'), id: goodId, method: fc.constantFrom('GET', 'HEAD', 'DELETE'), path: paths }),
    fc.record({ type: fc.constant('request'), id: goodId, method: fc.constantFrom('POST', 'PATCH', 'PUT'), path: paths, body: fc.record({ title: fc.string({ minLength: 1, maxLength: 8 }), done: fc.boolean() }, { requiredKeys: [] }) }),
    fc.record({ stream: fc.constant('tasks'), payload: fc.record({ action: fc.constantFrom('list', 'retrieve', 'delete', 'done'), pk: goodPk, data: fc.record({ page: fc.integer({ min: 1, max: 2 }), done: fc.boolean() }, { requiredKeys: [] }), request_id: goodId }, { requiredKeys: ['action', 'request_id'] }) }),
    fc.record({ stream: fc.constant('tasks'), payload: fc.record({ action: fc.constantFrom('create', 'update'), pk: goodPk, data: fc.record({ title: fc.string({ minLength: 1, maxLength: 8 }), done: fc.boolean() }, { requiredKeys: [] }), request_id: goodId }, { requiredKeys: ['action', 'data', 'request_id'] }) }),
    fc.record({ stream: fc.constant('tasks'), payload: fc.record({ action: fc.constantFrom('subscribe', 'unsubscribe'), pk: goodPk, data: fc.record({ action: fc.constantFrom('create', 'update', 'delete'), pk: goodPk }, { requiredKeys: ['action'] }), request_id: goodId }, { requiredKeys: ['action', 'data', 'request_id'] }) })
  )
  const fields = fc.constantFrom('type', 'id', 'model', 'action', 'lookup_by', 'view_kwargs', 'query_params', 'path', 'snapshot', 'method', 'body', 'stream', 'payload', 'pk', 'data', 'request_id', 'page', ...protoNames)
  const mutated = fc.tuple(wellFormed, fc.option(fc.tuple(fields, fc.oneof(anything, hostileString, number)), { freq: 2 }), fc.boolean()).map(([frame, mutation, inPayload]) => {
    if (mutation === null) return frame
    const [field, value] = mutation
    const copy: Record<string, unknown> = { ...frame }
    const target = inPayload && typeof copy.payload === 'object' && copy.payload !== null ? (copy.payload = { ...copy.payload }) as Record<string, unknown> : copy
    Object.defineProperty(target, field, { value, enumerable: true, configurable: true, writable: true })
    return copy
  })
  const json = fc.oneof(
    { arbitrary: mutated, weight: 5 },
    { arbitrary: fc.oneof(subscribe, unsubscribe, request, otherType, channels), weight: 1 }
  ).map((value): Sent => ({ text: JSON.stringify(value) }))

  // what JSON.stringify cannot produce: deep nesting, numbers beyond double range, duplicate and __proto__ keys
  const deep = fc.tuple(fc.integer({ min: 60, max: 6000 }), fc.constantFrom('[', '{"a":')).map(([depth, open]) => {
    const close = open === '[' ? ']' : '}'
    return open.repeat(depth) + (open === '[' ? '' : '1') + close.repeat(depth)
  })
  const templates = [
    (v: string) => `{"type":"request","id":1,"method":"POST","path":"/tasks","body":${v}}`,
    (v: string) => `{"type":"request","id":2,"method":"PATCH","path":"/tasks/1","body":{"title":${v}}}`,
    (v: string) => `{"type":${v},"id":3}`,
    (v: string) => `{"type":"subscribe","id":${v},"model":"${table}","action":"list"}`,
    (v: string) => `{"type":"subscribe","id":5,"model":"${table}","action":"list","view_kwargs":${v}}`,
    (v: string) => `{"stream":"tasks","payload":{"action":"create","data":${v},"request_id":6}}`,
    (v: string) => `{"stream":"tasks","payload":{"action":"subscribe","pk":${v},"data":{"action":"update"},"request_id":7}}`,
    (v: string) => `{"stream":${v},"payload":{"action":"list"}}`,
    (v: string) => v
  ]
  const raw = fc.oneof(deep, fc.constantFrom('1e400', '-1e400', '123456789012345678901234567890', '{"__proto__":{"type":"subscribe"}}', '{"constructor":{"prototype":{"x":1}}}', '{"a":1,"a":2}', 'null', '[]', '""', '{', ''))
  const templated = fc.tuple(fc.constantFrom(...templates), raw).map(([template, value]): Sent => ({ text: template(value) }))
  const protoKeys = fc.constantFrom(
    `{"type":"subscribe","id":8,"model":"${table}","action":"list","view_kwargs":{"__proto__":{"id":1}}}`,
    `{"type":"subscribe","id":9,"model":"${table}","action":"retrieve","lookup_by":1,"__proto__":{"path":"/tasks"}}`,
    '{"stream":"tasks","payload":{"action":"update","pk":1,"data":{"__proto__":{"title":"x"},"constructor":{"prototype":{"done":true}}},"request_id":10}}',
    '{"type":"request","id":11,"method":"POST","path":"/tasks","body":{"title":"t","__proto__":{"owner_id":2}}}'
  ).map((text): Sent => ({ text }))
  const garbage = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 40 })).map((text): Sent => ({ text }))
  const oversized = fc.integer({ min: 64 * 1024 + 1, max: 80 * 1024 }).map((size): Sent => ({ text: `{"type":"request","id":12,"method":"GET","path":"/tasks","body":"${'x'.repeat(size)}"}` }))
  const binary = fc.jsonValue({ maxDepth: 2 }).map((value): Sent => ({ binary: JSON.stringify(value) ?? 'null' }))

  return fc.oneof(
    { arbitrary: json, weight: 12 },
    { arbitrary: templated, weight: 4 },
    { arbitrary: protoKeys, weight: 1 },
    { arbitrary: garbage, weight: 2 },
    { arbitrary: oversized, weight: 1 },
    { arbitrary: binary, weight: 1 }
  )
}

/** An answer to a client frame (not a broadcast, resync or channels-api event, which come on their own). */
function isAnswer (frame: Frame): boolean {
  if (typeof frame.type === 'string') return ['subscribed', 'unsubscribed', 'response', 'error'].includes(frame.type)
  return typeof (frame.payload as { response_status?: unknown } | undefined)?.response_status === 'number'
}

function statusOf (frame: Frame): unknown {
  if (frame.type === 'error') return frame.code
  if (frame.type === 'response') return frame.status
  return (frame.payload as { response_status?: unknown } | undefined)?.response_status
}

t.test('each kind of input that used to fail with 500 is a 400 naming the problem', async (t) => {
  const { table, user } = await tasksFixture(t, { configure: (app) => { app.realtime.resource('tasks', { prefix: '/tasks' }) } })
  const client = await user(1)
  const deep = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth)
  const native: Array<[string, RegExp]> = [
    ['{"type":"constructor","id":1}', /^unknown frame type "constructor"/],
    ['{"type":"__proto__","id":1}', /^unknown frame type "__proto__"/],
    ['{"type":"toString","id":1}', /^unknown frame type "toString"/],
    [`{"type":"request","id":1,"method":"POST","path":"/tasks","body":${deep(5000)}}`, /^frame is nested deeper than 64 levels$/],
    [`{"type":${deep(5000)},"id":1}`, /^frame is nested deeper than 64 levels$/],
    [JSON.stringify({ type: 'subscribe', id: 1, model: table, action: 'retrieve', lookup_by: 'a\ud800' }), /^invalid "lookup_by" in subscribe frame: not well-formed Unicode/],
    [JSON.stringify({ type: 'request', id: 1, method: 'GET', path: '/\\x y' }), /^invalid "path" in request frame: expected a path on this server/],
    [JSON.stringify({ type: 'subscribe', id: 1, path: '//elsewhere/tasks' }), /^invalid "path" in subscribe frame/]
  ]
  for (const [text, message] of native) {
    const answer = client.next((frame) => frame.type === 'error')
    client.send(text)
    t.match(await answer, { code: 400, message }, text.slice(0, 100))
  }
  const channels: Array<[string, RegExp]> = [
    [`{"stream":"tasks","payload":{"action":"create","data":${deep(5000)},"request_id":1}}`, /^channels-api frame is nested deeper than 64 levels$/],
    [JSON.stringify({ stream: 'tasks', payload: { action: 'retrieve', pk: '\udc00', request_id: 1 } }), /^invalid "payload.pk" in channels-api frame: not well-formed Unicode/],
    [JSON.stringify({ stream: 'tasks', payload: { action: 'subscribe', data: { action: 'update', pk: '1\ud800' }, request_id: 1 } }), /^invalid "payload.data.pk" in channels-api frame/]
  ]
  for (const [text, message] of channels) {
    const answer = client.next((frame) => frame.stream === 'tasks')
    client.send(text)
    t.match(await answer, { payload: { response_status: 400, errors: [message] } }, text.slice(0, 100))
  }
})

t.test('fuzzed frames are answered with 4xx or served, never with 500', async (t) => {
  const seeds = seedsFor(t)
  t.comment(`FUZZ_RUNS=${RUNS}`)
  const logs: Array<{ level: number, msg?: string }> = []
  const stream = new Writable({ write (chunk, _encoding, callback) { logs.push(JSON.parse(String(chunk))); callback() } })
  const { app, table } = await tasksFixture(t, {
    rows: [{ title: 'a', owner_id: 1, done: false }, { title: 'b', owner_id: 1, done: true }, { title: 'c', owner_id: 2, done: false }],
    plugin: { maxFramesPerSecond: 1_000_000, maxSubscriptions: 1000 },
    logger: { level: 'warn', stream },
    configure: (app) => { app.realtime.resource('tasks', { prefix: '/tasks' }) }
  })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  const socket = new WebSocket(`${address.replace('http', 'ws')}/ws/subscribe`, { headers: { authorization: 'Bearer 1' } })
  await new Promise((resolve) => socket.once('open', resolve))
  const client = new TestClient(socket)
  t.teardown(() => { client.close() })

  const failures: Array<{ seed: number, sent: string, answer: Frame }> = []
  for (const seed of seeds) {
    for (const sent of fc.sample(frames(table), { seed, numRuns: RUNS })) {
      const answered = client.next(isAnswer)
      if ('binary' in sent) socket.send(Buffer.from(sent.binary), { binary: true })
      else socket.send(sent.text)
      const answer = await answered.catch((err: Error) => { throw new Error(`no answer to ${JSON.stringify(sent).slice(0, 300)} (seed ${seed}): ${err.message.slice(0, 300)}`) })
      if (statusOf(answer) === 500) failures.push({ seed, sent: JSON.stringify(sent).slice(0, 300), answer })
    }
  }

  t.same(failures, [], `no frame fails with 500 (seeds ${seeds.join(', ')})`)
  t.same(logs.filter((line) => line.level >= 50), [], 'nothing is logged as an error')
  t.equal(client.closed, undefined, 'the socket survives it all')
  const after = await client.request('GET', '/tasks')
  t.equal(after.status, 200, 'and still serves requests')
})

t.test('invalid UTF-8 in a text frame closes the socket with 1007 (set by ws)', async (t) => {
  const { app } = await tasksFixture(t)
  const client = await TestClient.connect(app, { authorization: 'Bearer 1' })
  const closed = new Promise<number>((resolve) => client.socket.once('close', resolve))
  client.socket.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false })
  t.equal(await closed, 1007)
})
