/**
 * Registering the plugin, as a user's TypeScript sees it: the options are
 * checked by the compiler before `resolveOptions` checks them at run time.
 */
import Fastify, { type FastifyRequest } from 'fastify'
import { Redis } from 'ioredis'
import knex from 'knex'
import { expect, test } from 'tstyche'
import restLive, { errors, restLive as named, type ExpiresAt, type RestLiveOptions } from 'fastify-rest-live'

const db = knex({ client: 'pg' })
const app = Fastify()

test('the default export and the named one are the same plugin', () => {
  expect(named).type.toBe(restLive)
})

test('every option is accepted with its own type', async () => {
  // plain calls: a type error in this file fails the run, and callbacks get their parameters' types from context
  await app.register(restLive, { knex: db })
  await app.register(restLive, {
    knex: db,
    redis: 'redis://127.0.0.1:6379',
    path: '/live',
    channelPrefix: 'app',
    maxPayload: 1024,
    maxSubscriptions: 10,
    maxFramesPerSecond: 10,
    maxBufferedBytes: 1 << 20,
    allowedOrigins: ['https://app.example.com'],
    inspector: true,
    reauthorizeEvery: 60_000,
    expiresAt: (request) => {
      expect(request).type.toBe<FastifyRequest>()
      return request.headers['x-expires'] === undefined ? undefined : Number(request.headers['x-expires'])
    }
  })
  await app.register(restLive, { knex: db, redis: { host: '127.0.0.1', port: 6379 } })
  await app.register(restLive, { knex: db, redis: new Redis({ lazyConnect: true }) })
  // Fastify's own registration options ride along
  await app.register(restLive, { knex: db, prefix: '/api' })
})

test('wrong options are compile errors', () => {
  expect(app.register).type.not.toBeCallableWith(restLive, {})
  expect(app.register).type.not.toBeCallableWith(restLive, { knex: 'postgres://localhost/db' })
  expect(app.register).type.not.toBeCallableWith(restLive, { knex: db, maxPayLoad: 1024 })
  expect(app.register).type.not.toBeCallableWith(restLive, { knex: db, maxPayload: '64kb' })
  expect(app.register).type.not.toBeCallableWith(restLive, { knex: db, redis: 6379 })
  expect(app.register).type.not.toBeCallableWith(restLive, { knex: db, allowedOrigins: 'https://app.example.com' })
  expect(app.register).type.not.toBeCallableWith(restLive, { knex: db, inspector: 'yes' })
  expect(app.register).type.not.toBeCallableWith(restLive, { knex: db, expiresAt: () => '2030-01-01' })
})

test('expiresAt answers a Date, milliseconds, nothing, or a promise of one', () => {
  expect<() => Date>().type.toBeAssignableTo<ExpiresAt>()
  expect<() => number>().type.toBeAssignableTo<ExpiresAt>()
  expect<() => undefined>().type.toBeAssignableTo<ExpiresAt>()
  expect<() => null>().type.toBeAssignableTo<ExpiresAt>()
  expect<() => Promise<number | undefined>>().type.toBeAssignableTo<ExpiresAt>()
  expect<() => string>().type.not.toBeAssignableTo<ExpiresAt>()
  expect<RestLiveOptions['expiresAt']>().type.toBe<ExpiresAt | undefined>()
})

test('errors are exported with their codes, constructed with their own arguments', () => {
  const notFound = new errors.InstanceNotFoundError('tasks', 'id', '7')
  expect(notFound.code).type.toBe<string>()
  expect(notFound.statusCode).type.toBe<number | undefined>()
  expect(notFound).type.toBeAssignableTo<Error>()
  expect(errors.InstanceNotFoundError).type.not.toBeConstructableWith('tasks', 7)
  expect(errors.InvalidOptionError).type.toBeConstructableWith("'path'", 'must start with /')
  expect(errors.KnexCapturedElsewhereError).type.toBeConstructableWith()
  expect(errors.KnexCapturedElsewhereError).type.not.toBeConstructableWith('anything')
})
