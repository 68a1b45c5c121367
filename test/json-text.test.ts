/**
 * A route's answer reaches frames as its own text, never re-encoded:
 * JSON.parse + JSON.stringify would drop whitespace, move integer-like keys
 * first and round numbers beyond 2^53.
 */
import t from 'tap'
import { EventSubscriber } from '../lib/channels/adapter.js'
import { deletedInstance, lastFieldText } from '../lib/subscriptions/frames-out.js'
import { arrayItemTexts, memberText, safeJson, valueEnd } from '../lib/subscriptions/json-text.js'

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
  t.equal(safeJson('{"a":1}') !== undefined, true)
  t.equal(safeJson('nope'), undefined)
})

t.test('DELETED carries the primary key in the bytes the subscriber saw', async (t) => {
  t.equal(deletedInstance('id', '{"title":"a","id":9007199254740993}'), '{"id":9007199254740993}', 'no rounding')
  t.equal(deletedInstance('id', '{"id": "a"}'), '{"id":"a"}')
  t.equal(deletedInstance('id', '{"title":"a"}'), '{}', 'a serialization without the key')
})

t.test('a frame\'s instance and data, as spliced', async (t) => {
  t.equal(lastFieldText('{"type":"broadcast","id":",\\"instance\\":","model":"m","action":"CREATED","instance":{"id": 1}}', 'instance'), '{"id": 1}')
  t.equal(lastFieldText('{"type":"resync","id":",\\"data\\":","data":[1, 2]}', 'data'), '[1, 2]')
})

t.test('channels-api events splice the rows as the route serialized them', async (t) => {
  const sent: string[] = []
  const sink = { send: (frame: string) => { sent.push(frame); return true } }
  const one = new EventSubscriber(sink, { stream: 's', action: 'update', pk: '9007199254740993', pkField: 'id', model: 'm', acknowledged: () => {} })
  one.send('{"type":"broadcast","id":"c","model":"m","action":"UPDATED","instance":{"id":9007199254740992, "title":"rounded: another row"}}')
  one.send('{"type":"broadcast","id":"c","model":"m","action":"UPDATED","instance":{"id":9007199254740993, "title":"a"}}')
  one.send('{"type":"resync","id":"c","data":[{"id":1}, {"id":9007199254740993, "title":"b"}]}')
  const any = new EventSubscriber(sink, { stream: 's', action: 'update', pk: undefined, pkField: 'uuid', model: 'm', acknowledged: () => {} })
  any.send('{"type":"broadcast","id":"c","model":"m","action":"UPDATED","instance":{"uuid":"a\\u0062", "n":1.50}}')
  any.send('{"type":"broadcast","id":"c","model":"m","action":"UPDATED","instance":{"n":1}}')
  t.same(sent, [
    '{"stream":"s","payload":{"action":"update","pk":9007199254740993,"data":{"id":9007199254740993, "title":"a"},"model":"m"}}',
    '{"stream":"s","payload":{"action":"resync","pk":"9007199254740993","data":[{"id":9007199254740993, "title":"b"}],"model":"m"}}',
    '{"stream":"s","payload":{"action":"update","pk":"a\\u0062","data":{"uuid":"a\\u0062", "n":1.50},"model":"m"}}',
    '{"stream":"s","payload":{"action":"update","pk":null,"data":{"n":1},"model":"m"}}'
  ])
  const byString = new EventSubscriber(sink, { stream: 's', action: 'delete', pk: 'ab', pkField: 'uuid', model: 'm', acknowledged: () => {} })
  t.equal(byString.send('{"type":"broadcast","id":"c","model":"m","action":"DELETED","instance":{"uuid":"a\\u0062"}}'), true)
  t.equal(sent.length, 5, 'a string pk is compared unescaped')
})
