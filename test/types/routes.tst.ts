/**
 * `config.realtime` on a route, typed for users by the module augmentation in
 * lib/types.ts (the package's types load it with the plugin's).
 */
import Fastify, { type FastifyContextConfig, type FastifyRequest } from 'fastify'
import knex, { type Knex } from 'knex'
import { expect, test } from 'tstyche'
import type { RealtimeRouteConfig } from 'fastify-rest-live'

const db = knex({ client: 'pg' })
const app = Fastify()

test('config.realtime is part of every route config', () => {
  expect<FastifyContextConfig['realtime']>().type.toBe<RealtimeRouteConfig | undefined>()
  app.get('/tasks', async (request) => {
    expect(request.routeOptions.config.realtime).type.toBe<RealtimeRouteConfig | undefined>()
    return []
  })
})

test('a list and a retrieve route, with every field', () => {
  app.get('/tasks', { config: { realtime: { model: 'tasks' } } }, async () => [])
  app.get('/tasks/:slug', {
    config: {
      realtime: {
        model: 'tasks',
        queryset: (request) => {
          expect(request).type.toBe<FastifyRequest>()
          return db('tasks').where('owner', request.headers['x-user'] ?? null)
        },
        lookup: 'slug',
        pk: 'id',
        expiresAt: () => new Date()
      }
    }
  }, async () => ({}))
  // a queryset that takes no request names the table itself: model may be left out
  app.get('/notes', { config: { realtime: { queryset: () => db('notes') } } }, async () => [])
})

test('a field of the wrong type is a compile error', () => {
  const handler = async (): Promise<unknown[]> => []
  expect(app.get).type.not.toBeCallableWith('/tasks/:id', { config: { realtime: { lookup: 5 } } }, handler)
  expect(app.get).type.not.toBeCallableWith('/tasks', { config: { realtime: { model: 5 } } }, handler)
  expect(app.get).type.not.toBeCallableWith('/tasks', { config: { realtime: { pk: true } } }, handler)
  expect(app.get).type.not.toBeCallableWith('/tasks', { config: { realtime: { queryset: () => 'tasks' } } }, handler)
  expect(app.get).type.not.toBeCallableWith('/tasks', { config: { realtime: { expiresAt: () => 'tomorrow' } } }, handler)
  expect(app.get).type.not.toBeCallableWith('/tasks', { config: { realtime: 'tasks' } }, handler)
})

test('a route names its table, or a queryset to learn it from', () => {
  const handler = async (): Promise<unknown[]> => []
  expect(app.get).type.not.toBeCallableWith('/tasks', { config: { realtime: {} } }, handler)
  expect(app.get).type.not.toBeCallableWith('/tasks', { config: { realtime: { lookup: 'slug' } } }, handler)
  expect({ queryset: () => db('tasks') }).type.toBeAssignableTo<RealtimeRouteConfig>()
})

test('a misspelled field is a compile error where the config is typed as RealtimeRouteConfig', () => {
  // Fastify infers a route's config type from the literal itself (its ContextConfig generic), so an
  // unknown key inside app.get's options is allowed by the compiler and refused at registration
  // (FST_REST_LIVE_INVALID_ROUTE_CONFIG); a config written apart, or with `satisfies`, is checked here
  expect({ model: 'tasks', lookup: 'slug' }).type.toBeAssignableTo<RealtimeRouteConfig>()
  expect({ modle: 'tasks' }).type.not.toBeAssignableTo<RealtimeRouteConfig>()
  expect({ model: 'tasks', lookupField: 'slug' }).type.not.toBeAssignableTo<RealtimeRouteConfig>()
  const realtime = { model: 'tasks', lookup: 'slug' } satisfies RealtimeRouteConfig
  app.get('/tasks/:slug', { config: { realtime } }, async () => ({}))
  expect<RealtimeRouteConfig['queryset']>().type.toBe<((request: FastifyRequest) => Knex.QueryBuilder) | undefined>()
})
