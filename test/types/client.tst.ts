/**
 * fastify-rest-live/client, the browser and Node client, as its users type it.
 */
import { expect, test } from 'tstyche'
import { WebSocket } from 'ws'
import { LiveView, RestLiveClient, RestLiveError, type RestResponse, type Row, type ViewFrame } from 'fastify-rest-live/client'

interface Task { id: number, title: string, done: boolean }

const live = new RestLiveClient('ws://127.0.0.1:3000/ws/subscribe', { WebSocket, reconnect: true })

test('the constructor takes a URL and options', () => {
  expect(RestLiveClient).type.toBeConstructableWith('ws://host/ws/subscribe')
  expect(RestLiveClient).type.toBeConstructableWith('ws://host/ws/subscribe', { reconnect: 500, onError: (error: RestLiveError) => error.code })
  expect(RestLiveClient).type.not.toBeConstructableWith('ws://host/ws/subscribe', { reconect: true })
  expect(RestLiveClient).type.not.toBeConstructableWith('ws://host/ws/subscribe', { reconnect: 'yes' })
  expect(RestLiveClient).type.not.toBeConstructableWith()
  expect(live.status).type.toBe<'connecting' | 'open' | 'closed'>()
})

test('a subscription is a typed live view', () => {
  const tasks = live.subscribe<Task>({ model: 'tasks', action: 'list', query_params: { done: false } }, {
    onChange: (view, frame) => {
      expect(view).type.toBe<LiveView<Task>>()
      expect(frame).type.toBe<ViewFrame<Task>>()
    },
    onError: (error) => { expect(error).type.toBe<RestLiveError>() }
  })
  expect(tasks.rows).type.toBe<Task[]>()
  expect(tasks.instance).type.toBe<Task | null>()
  expect(tasks.byKey.get(7)).type.toBe<Task | undefined>()
  expect(tasks.ready).type.toBe<Promise<LiveView<Task>>>()
  expect(live.subscribe({ path: '/tasks/7' }).rows).type.toBe<Row[]>()
  expect(live.subscribe({ model: 'tasks', action: 'retrieve', lookup_by: 7 })).type.toBe<LiveView<Row>>()
})

test('a subscription target is a list, a retrieve or a path', () => {
  expect(live.subscribe).type.not.toBeCallableWith({ model: 'tasks', action: 'create' })
  expect(live.subscribe).type.not.toBeCallableWith({ model: 'tasks', action: 'retrieve' })
  expect(live.subscribe).type.not.toBeCallableWith({ model: 'tasks' })
  expect(live.subscribe).type.not.toBeCallableWith('/tasks')
  expect(live.subscribe).type.not.toBeCallableWith({ path: '/tasks' }, { onchange: () => {} })
})

test('request runs a route over the socket', () => {
  expect(live.request('GET', '/tasks')).type.toBe<Promise<RestResponse<unknown>>>()
  expect(live.request<Task>('POST', '/tasks', { title: 'write docs' })).type.toBe<Promise<RestResponse<Task>>>()
  expect(live.request).type.not.toBeCallableWith('OPTIONS', '/tasks')
  expect(live.request).type.not.toBeCallableWith('/tasks')
})

test('errors carry the status or close code', () => {
  expect(new RestLiveError(404, 'No tasks instance with id 7').code).type.toBe<number>()
  expect(RestLiveError).type.not.toBeConstructableWith('not found')
})
