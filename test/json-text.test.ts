/**
 * A route's answer reaches frames as its own text, never re-encoded:
 * JSON.parse + JSON.stringify would drop whitespace, move integer-like keys
 * first and round numbers beyond 2^53.
 */
import Fastify from 'fastify'
import t from 'tap'
import { CommitClock } from '../lib/capture/commit-clock.js'
import { EventSubscriber } from '../lib/channels/events.js'
import { jsonValue } from '../lib/json.js'
import { RouteRegistry, type RealtimeRoute } from '../lib/registry/route-registry.js'
import { UnkeyedRows } from '../lib/registry/unkeyed-rows.js'
import { createCounters } from '../lib/stats.js'
import { SubscriptionManager } from '../lib/subscriptions/manager.js'
import { arrayItemTexts, memberText, valueEnd } from '../lib/subscriptions/json-text.js'
import { Broadcast, ViewText } from '../lib/subscriptions/outbound.js'
import { ViewSource, type SerializedRows } from '../lib/subscriptions/view.js'
import { NativeSubscriber } from '../lib/ws/frames-out.js'

t.test('array elements, as written', async (t) => {
  const text = ' [ {"b":1,"2":"x, ] }"} , [1, [2]] ,"q\\"uote",  -1.50e3 , true,null ] '
  t.same(arrayItemTexts(text), ['{"b":1,"2":"x, ] }"}', '[1, [2]]', '"q\\"uote"', '-1.50e3', 'true', 'null'])
  t.same(arrayItemTexts('[]'), [])
  t.same(arrayItemTexts('[ ]'), [])
  t.same(arrayItemTexts('[{"id": 1}]'), ['{"id": 1}'])
  // what JSON.stringify(JSON.parse()) would not keep
  t.not(JSON.stringify(JSON.parse('{"b":1,"2":"x"}')), '{"b":1,"2":"x"}')
})

t.test('an object member, as written', async (t) => {
  t.equal(memberText('{"id": 9007199254740993, "title": "a"}', 'id'), '9007199254740993')
  t.equal(memberText(' { "t" : "}" , "id" : "a\\"b" } ', 'id'), '"a\\"b"')
  t.equal(memberText('{"x":{"id":1},"id":[1,{"id":2}]}', 'id'), '[1,{"id":2}]', 'a top-level member, not a nested one')
  t.equal(memberText('{"id":1,"id":2}', 'id'), '2', 'the last, as JSON.parse keeps')
  t.equal(memberText('{"\\u0069d":3}', 'id'), '3', 'an escaped name')
  t.equal(memberText('{"title":"a"}', 'id'), undefined)
  t.equal(memberText('{}', 'id'), undefined)
  t.equal(memberText('[{"id":1}]', 'id'), undefined, 'not an object')
})

t.test('value ends', async (t) => {
  t.equal(valueEnd('123', 0), 3, 'a number at the end of the text')
  t.equal(valueEnd('"a\\\\"x', 0), 5, 'an escaped backslash does not escape the quote after it')
  t.equal(jsonValue('{"a":1}') !== undefined, true)
  t.equal(jsonValue('nope'), undefined)
})

t.test('DELETED carries the primary key in the bytes the subscriber saw', async (t) => {
  const deleted = (lastSeen: string): Broadcast => Broadcast.deleted('m', 'k', lastSeen, 'id')
  t.equal(deleted('{"title":"a","id":9007199254740993}').instance, '{"id":9007199254740993}', 'no rounding')
  t.equal(deleted('{"title":"a","id":9007199254740993}').pk, '9007199254740993', 'and the pk is known without looking again')
  t.equal(deleted('{"id": "a"}').instance, '{"id":"a"}')
  t.equal(deleted('{"title":"a"}').instance, '{}', 'a serialization without the key')
  t.equal(deleted('{"title":"a"}').pk, 'null')
})

t.test('channels-api events splice the rows as the route serialized them', async (t) => {
  const sent: string[] = []
  const sink = { send: (frame: string) => { sent.push(frame); return true } }
  const one = new EventSubscriber(sink, { stream: 's', action: 'update', pk: '9007199254740993', model: 'm', acknowledged: () => {} })
  one.broadcast(undefined, new Broadcast('m', 'UPDATED', '9007199254740992', '{"id":9007199254740992, "title":"rounded: another row"}', 'id'))
  one.broadcast(undefined, new Broadcast('m', 'UPDATED', '9007199254740993', '{"id":9007199254740993, "title":"a"}', 'id'))
  one.resync(undefined, new ViewText(new Map([['1', '{"id":1}'], ['9007199254740993', '{"id":9007199254740993, "title":"b"}']]), false))
  const any = new EventSubscriber(sink, { stream: 's', action: 'update', pk: undefined, model: 'm', acknowledged: () => {} })
  any.broadcast(undefined, new Broadcast('m', 'UPDATED', 'ab', '{"uuid":"a\\u0062", "n":1.50}', 'uuid'))
  any.broadcast(undefined, new Broadcast('m', 'UPDATED', '1', '{"n":1}', 'uuid'))
  t.same(sent, [
    '{"stream":"s","payload":{"action":"update","pk":9007199254740993,"data":{"id":9007199254740993, "title":"a"},"model":"m"}}',
    '{"stream":"s","payload":{"action":"resync","pk":"9007199254740993","data":[{"id":9007199254740993, "title":"b"}],"model":"m"}}',
    '{"stream":"s","payload":{"action":"update","pk":"a\\u0062","data":{"uuid":"a\\u0062", "n":1.50},"model":"m"}}',
    '{"stream":"s","payload":{"action":"update","pk":null,"data":{"n":1},"model":"m"}}'
  ])
  // a row is matched by its key in the view (the primary key's value as a string), not by its escaped text
  const byString = new EventSubscriber(sink, { stream: 's', action: 'delete', pk: 'ab', model: 'm', acknowledged: () => {} })
  t.equal(byString.broadcast(undefined, Broadcast.deleted('m', 'ab', '{"uuid":"a\\u0062"}', 'uuid')), true)
  t.equal(sent.length, 5, 'a string pk is compared unescaped')
  t.equal(sent[4], '{"stream":"s","payload":{"action":"delete","pk":"a\\u0062","data":{"uuid":"a\\u0062"},"model":"m"}}')
  byString.resync(undefined, new ViewText(new Map([['1', '{"uuid":"x"}']]), false))
  t.equal(sent[5], '{"stream":"s","payload":{"action":"resync","pk":"ab","data":[],"model":"m"}}', 'a list without its row: an empty list')
})

t.test('one change to a view with 100 channels-api and 100 native subscribers: each frame built once, none parsed back', async (t) => {
  const route: RealtimeRoute = { id: 1, url: '/things', model: 'things', kind: 'list', lookup: 'id', pk: 'id', params: [], queryset: undefined, response: undefined, serialize: undefined }
  /** A view whose rows the test sets. */
  class SetView extends ViewSource {
    rows: SerializedRows = new Map([['1', '{"id":1,"v":1}']])
    async readAll (): Promise<SerializedRows> { return this.rows }
    async readChanged (): Promise<undefined> { return undefined }
  }
  const registry = new RouteRegistry()
  const log = Fastify().log
  const manager = new SubscriptionManager(registry, log, createCounters(), new CommitClock(), new UnkeyedRows(log, registry, 'sqlite'))
  manager.attach({ publish: async () => {}, follow: async () => {}, unfollow: () => {}, close: async () => {} })
  const view = new SetView('v', route)
  const channelsFrames: string[] = []
  const nativeFrames: string[] = []
  for (let n = 0; n < 100; n++) {
    const events = new EventSubscriber({ send: (frame) => { channelsFrames.push(frame); return true } }, { stream: 'things', action: 'update', pk: undefined, model: 'things', acknowledged: () => {} })
    await manager.subscribe({ id: `c${n}`, subscriber: events, view, snapshot: false })
    await manager.subscribe({ id: `n${n}`, subscriber: new NativeSubscriber({ send: (frame) => { nativeFrames.push(frame); return true } }), view, snapshot: false })
  }
  nativeFrames.length = 0

  // spies on the seams a frame is built through: the change's memo, and any JSON parse
  const text = Broadcast.prototype.text
  const built: string[] = []
  Broadcast.prototype.text = function (name, build) { return text.call(this, name, () => { built.push(name); return build() }) }
  const parse = JSON.parse
  let parses = 0
  JSON.parse = (...args: Parameters<typeof JSON.parse>) => { parses++; return parse(...args) as unknown }
  try {
    view.rows = new Map([['1', '{"id":1,"v":2}']])
    manager.onEvent({ model: 'things', op: 'update', rows: null })
    await manager.idle()
  } finally {
    Broadcast.prototype.text = text
    JSON.parse = parse
  }

  t.equal(channelsFrames.length, 100)
  t.equal(new Set(channelsFrames).size, 1, 'every channels-api subscriber gets the same frame')
  t.equal(channelsFrames[0], '{"stream":"things","payload":{"action":"update","pk":1,"data":{"id":1,"v":2},"model":"things"}}')
  t.equal(nativeFrames.length, 100)
  t.equal(nativeFrames[7], '{"type":"broadcast","id":"n7","model":"things","action":"UPDATED","instance":{"id":1,"v":2}}')
  t.equal(built.length, 2, 'built once per protocol shape, not once per subscriber')
  t.equal(new Set(built).size, 2)
  // the pk is found in the row's text once (its member names); no frame is parsed back per subscriber
  t.ok(parses <= 2, `${parses} parses for 200 subscribers`)
})
