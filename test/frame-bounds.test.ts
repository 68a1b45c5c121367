/**
 * A value of the right type but out of bounds is told which bound it broke,
 * not "expected one of string, integer" (the types it already has).
 */
import t from 'tap'
import { validateChannelsFrame } from '../lib/channels/frames.js'
import { validateFrame } from '../lib/ws/frames.js'

function messageOf (fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    return (err as Error).message
  }
  throw new Error('expected a rejection')
}

t.test('a frame id longer than 128 characters is told it is too long', async (t) => {
  const message = messageOf(() => validateFrame({ type: 'unsubscribe', id: 'x'.repeat(129) }))
  t.equal(message, 'invalid "id" in unsubscribe frame: too long (at most 128 characters, got 129)')
  t.doesNotThrow(() => validateFrame({ type: 'unsubscribe', id: 'x'.repeat(128) }))
})

t.test('an empty frame id is told it must not be empty', async (t) => {
  t.equal(messageOf(() => validateFrame({ type: 'unsubscribe', id: '' })), 'invalid "id" in unsubscribe frame: must not be empty')
})

t.test('a frame id of the wrong type still lists the types', async (t) => {
  t.equal(messageOf(() => validateFrame({ type: 'unsubscribe', id: true })), 'invalid "id" in unsubscribe frame: expected one of string, integer')
})

t.test('channels-api pk and request_id bounds', async (t) => {
  t.equal(
    messageOf(() => validateChannelsFrame({ stream: 'tasks', payload: { action: 'retrieve', pk: 'x'.repeat(257) } })),
    'invalid "payload.pk" in channels-api frame: too long (at most 256 characters, got 257)'
  )
  t.equal(
    messageOf(() => validateChannelsFrame({ stream: 'tasks', payload: { action: 'retrieve', pk: '' } })),
    'invalid "payload.pk" in channels-api frame: must not be empty'
  )
  t.equal(
    messageOf(() => validateChannelsFrame({ stream: 'tasks', payload: { action: 'retrieve', pk: 1, request_id: 'r'.repeat(257) } })),
    'invalid "payload.request_id" in channels-api frame: too long (at most 256 characters, got 257)'
  )
  t.equal(
    messageOf(() => validateChannelsFrame({ stream: 'tasks', payload: { action: 'retrieve', pk: 1.5 } })),
    'invalid "payload.pk" in channels-api frame: expected one of string, integer, null'
  )
  t.match(
    messageOf(() => validateChannelsFrame({ stream: 'x'.repeat(129), payload: { action: 'list' } })),
    /invalid "stream" in channels-api frame: expected string length less or equal to 128/
  )
})
