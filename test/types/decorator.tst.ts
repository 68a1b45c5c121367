/**
 * `app.realtime`, as handlers and application code call it.
 */
import Fastify from 'fastify'
import { expect, test } from 'tstyche'
import type { RealtimeDecorator, RealtimeStats, RealtimeSubscriptionInfo, ReauthorizeSummary, ResourceOptions, Row, WriteOp } from 'fastify-rest-live'

const app = Fastify()

test('app.realtime is on every instance', () => {
  expect(app.realtime).type.toBe<RealtimeDecorator>()
})

test('list and retrieve answer the REST response', () => {
  app.get('/tasks', { config: { realtime: { model: 'tasks' } } }, async (request) => {
    expect(app.realtime.list(request)).type.toBe<Promise<Row[]>>()
    expect(app.realtime.retrieve(request)).type.toBe<Promise<Row>>()
    return await app.realtime.list(request)
  })
  expect(app.realtime.list).type.not.toBeCallableWith()
  expect(app.realtime.list).type.not.toBeCallableWith('/tasks')
})

test('publish takes a table, the write, and the rows', () => {
  expect<WriteOp>().type.toBe<'insert' | 'update' | 'delete'>()
  expect(app.realtime.publish('tasks', 'update', [{ id: 7, done: true }])).type.toBe<Promise<void>>()
  expect(app.realtime.publish).type.not.toBeCallableWith('tasks', 'MOVED', [{ id: 7 }])
  expect(app.realtime.publish).type.not.toBeCallableWith('tasks', 'UPDATED', [{ id: 7 }])
  expect(app.realtime.publish).type.not.toBeCallableWith('tasks', 'update', { id: 7 })
  expect(app.realtime.publish).type.not.toBeCallableWith('tasks', 'update', [7])
  expect(app.realtime.publish).type.not.toBeCallableWith(7, 'update', [{ id: 7 }])
})

test('stats are plain counters', () => {
  expect(app.realtime.stats()).type.toBe<RealtimeStats>()
  expect<RealtimeStats>().type.toBe<{
    connections: number
    subscriptions: number
    broadcastsSent: number
    resyncsSent: number
    eventsReceived: number
    gapsDetected: number
    databaseChecks: number
  }>()
  expect(app.realtime.settled()).type.toBe<Promise<void>>()
})

test('reauthorize selects subscriptions by what they follow and who holds them', async () => {
  expect(app.realtime.reauthorize()).type.toBe<Promise<ReauthorizeSummary>>()
  const summary = await app.realtime.reauthorize((subscription) => {
    expect(subscription).type.toBe<RealtimeSubscriptionInfo>()
    return subscription.headers.authorization === 'Bearer 1' && subscription.model === 'tasks'
  })
  expect(summary).type.toBe<{ checked: number, ended: number, moved: number }>()
  expect(app.realtime.reauthorize).type.not.toBeCallableWith('Bearer 1')
  expect(app.realtime.reauthorize).type.not.toBeCallableWith((subscription: RealtimeSubscriptionInfo) => subscription.id)
  expect<RealtimeSubscriptionInfo>().type.toHaveProperty('protocol')
  expect<RealtimeSubscriptionInfo['protocol']>().type.toBe<'native' | 'channels'>()
})

test('resource declares a channels-api stream; its options are checked', () => {
  expect(app.realtime.resource('questions', { prefix: '/questions' })).type.toBe<void>()
  expect(app.realtime.resource).type.toBeCallableWith('questions', { prefix: '/questions', pageSize: 10, model: 'polls_question' })
  expect(app.realtime.resource).type.not.toBeCallableWith('questions', {})
  expect(app.realtime.resource).type.not.toBeCallableWith('questions', { prefix: '/questions', page_size: 10 })
  expect(app.realtime.resource).type.not.toBeCallableWith('questions', { prefix: '/questions', pageSize: '10' })
  expect(app.realtime.resource).type.not.toBeCallableWith({ prefix: '/questions' })
  expect<ResourceOptions['prefix']>().type.toBe<string>()
})
