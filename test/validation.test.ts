/**
 * What an application hands the plugin after registration (route
 * `config.realtime`, `app.realtime.resource()` options, `app.realtime.publish()`
 * arguments) is checked with TypeBox like the plugin options, and each mistake
 * is refused with a message that names the field, what it must be, and what
 * was given.
 */
import Fastify from 'fastify'
import t from 'tap'
import restLive from '../lib/index.js'
import { tasksFixture } from './helpers/fixture.js'
import { sqlite, uniqueName } from './helpers/db.js'

t.test('config.realtime: the field at fault, its fix, and what was given', async (t) => {
  const db = sqlite()
  const table = uniqueName('tasks')
  t.teardown(async () => { await db.destroy() })
  const cases: Array<[string, unknown, string]> = [
    ['lookup of the wrong type', { model: table, lookup: 5 }, "'lookup' must be a non-empty string: the column a retrieve finds its instance by, named as the route's parameter ('slug' for /tasks/:slug), got 5"],
    ['pk an object', { model: table, pk: { name: 'id' } }, "'pk' must be a non-empty string: the table's primary-key column (default 'id'), got an object"],
    ['model a number', { model: 5 }, "'model' must be the name of the table the route follows, like 'tasks', got 5"],
    ['neither model nor queryset', {}, "'model' must be the name of the table the route follows, like 'tasks' (only a queryset that takes no request can stand in for it), got nothing"],
    ['queryset a string', { model: table, queryset: 'select * from tasks' }, "'queryset' must be a function (request) => knex query builder, like (request) => db('tasks').where(...), got \"select * from tasks\""],
    ['expiresAt a number', { model: table, expiresAt: 3600 }, "'expiresAt' must be a function (request) => Date | number | undefined, got 3600"],
    ['a misspelled key', { modle: table }, "'modle' is not a config.realtime key (known: model, queryset, lookup, pk, expiresAt)"],
    // the key is read back from a JSON pointer, where '/' and '~' are escaped
    ['a key with / and ~', { model: table, 'pk/~id': 'id' }, "'pk/~id' is not a config.realtime key (known: model, queryset, lookup, pk, expiresAt)"],
    ['an array', [table], 'expected an object like { model, queryset }, got an array'],
    ['a string', table, `expected an object like { model, queryset }, got "${table}"`],
    ['null', null, 'expected an object like { model, queryset }, got null']
  ]
  for (const [name, realtime, detail] of cases) {
    const app = Fastify()
    t.teardown(async () => { await app.close() })
    await app.register(restLive, { knex: db })
    t.throws(() => { app.get('/broken/:id', { config: { realtime: realtime as never } }, async () => ({})) }, {
      code: 'FST_REST_LIVE_INVALID_ROUTE_CONFIG',
      message: `fastify-rest-live: route /broken/:id has an invalid config.realtime: ${detail}`
    }, name)
  }
})

t.test('app.realtime.resource(): the option at fault, its fix, and what was given', async (t) => {
  const { app } = await tasksFixture(t, { prefix: 'validation' })
  const declare = (options: unknown): void => { app.realtime.resource('questions', options as { prefix: string }) }
  const cases: Array<[unknown, string]> = [
    [{}, "'prefix' must be a path like '/questions' (starting with '/', no trailing '/', no parameters), got nothing"],
    [{ prefix: '/questions/' }, "'prefix' must be a path like '/questions' (starting with '/', no trailing '/', no parameters), got \"/questions/\""],
    [{ prefix: '/questions', pageSize: '5' }, "'pageSize' must be an integer from 1 to 1000, got \"5\""],
    [{ prefix: '/questions', pageSize: 1001 }, "'pageSize' must be an integer from 1 to 1000, got 1001"],
    [{ prefix: '/questions', model: false }, "'model' must be a non-empty string: the model named in event frames, got a boolean"],
    [{ prefix: '/questions', page_size: 5 }, "'page_size' is not a resource option (known: prefix, pageSize, model)"]
  ]
  for (const [options, detail] of cases) {
    t.throws(() => { declare(options) }, { code: 'FST_REST_LIVE_INVALID_RESOURCE', message: `fastify-rest-live: app.realtime.resource(): ${detail}` }, detail)
  }
})

t.test('app.realtime.publish(): the argument at fault, its fix, and what was given', async (t) => {
  const { app, table } = await tasksFixture(t, { prefix: 'validation' })
  const publish = async (model: unknown, op: unknown, rows: unknown): Promise<void> => { await app.realtime.publish(model as string, op as 'insert', rows as []) }
  const code = 'FST_REST_LIVE_INVALID_PUBLISH'
  await t.rejects(publish(table, 'MOVED', [{ id: 1 }]), { code, message: "fastify-rest-live: app.realtime.publish(): op must be 'insert', 'update' or 'delete', got \"MOVED\"" })
  await t.rejects(publish(table, 'UPDATED', [{ id: 1 }]), { code, message: /op must be 'insert', 'update' or 'delete', got "UPDATED"$/ })
  await t.rejects(publish(7, 'insert', [{ id: 1 }]), { code, message: "fastify-rest-live: app.realtime.publish(): model must be a table name like 'tasks', got 7" })
  await t.rejects(publish(table, 'insert', { id: 1 }), { code, message: `fastify-rest-live: app.realtime.publish(): rows must be an array of the rows of '${table}' that changed, each with its primary key, got an object` })
  await t.rejects(publish(table, 'insert', [{ id: 1 }, 'two']), { code, message: 'fastify-rest-live: app.realtime.publish(): rows[1] has no primary key \'id\'' })
  await t.resolves(publish(table, 'update', [{ id: 1 }]), 'valid arguments pass')
})
