/**
 * Frames carry the bytes REST sends: for every form of response schema Fastify
 * accepts, a snapshot is the REST body and a broadcast's instance is the row's
 * part of it. Forms no serializer can be derived from are refused at startup.
 */
import type { FastifyInstance } from 'fastify'
import type { Knex } from 'knex'
import t, { type Test } from 'tap'
import { successResponse } from '../lib/registry/response-schema.js'
import { postgresAvailable, type Dialect } from './helpers/db.js'
import { appFixture, tasksTable } from './helpers/fixture.js'
import { TestClient, type Frame } from './helpers/ws-client.js'

/** Properties in another order than the table's columns, so a raw row's JSON cannot pass for it. */
const Task = {
  type: 'object',
  properties: { title: { type: 'string' }, id: { type: 'integer' }, done: { type: 'boolean' }, owner_id: { type: 'integer' } }
}
const Tasks = { type: 'array', items: Task }

interface Form {
  name: string
  /** The list route's and the retrieve route's `schema.response`. */
  list: Record<string, unknown> | undefined
  retrieve: Record<string, unknown> | undefined
  /** Runs in the scope the routes are registered in, before them. */
  setup?: (scope: FastifyInstance) => void
  /** Whether the schema hides `secret` (false only without a schema: REST sends every column). */
  hidesSecret: boolean
}

const json = (schema: unknown): Record<string, unknown> => ({ content: { 'application/json': { schema } } })

const forms: Form[] = [
  { name: 'array + items', list: { 200: Tasks }, retrieve: { 200: Task }, hidesSecret: true },
  {
    name: '$ref items',
    list: { 200: { type: 'array', items: { $ref: 'task#' } } },
    retrieve: { 200: { $ref: 'task#' } },
    setup: (scope) => { scope.addSchema({ $id: 'task', ...Task }) },
    hidesSecret: true
  },
  {
    name: '$ref array (shared schemas in an encapsulated scope)',
    list: { 200: { $ref: 'tasks#' } },
    retrieve: { 200: { $ref: 'task#' } },
    setup: (scope) => {
      scope.addSchema({ $id: 'task', ...Task })
      scope.addSchema({ $id: 'tasks', type: 'array', items: { $ref: 'task#' } })
    },
    hidesSecret: true
  },
  {
    name: '$ref to a schema nested in a shared one, by pointer and by its own $id',
    list: { 200: { $ref: 'defs#/definitions/tasks' } },
    retrieve: { 200: { $ref: 'nested-task#' } },
    setup: (scope) => { scope.addSchema({ $id: 'defs', definitions: { tasks: Tasks, task: { $id: 'nested-task', ...Task } } }) },
    hidesSecret: true
  },
  {
    name: 'local $ref into the response schema',
    list: { 200: { type: 'array', definitions: { task: Task }, items: { $ref: '#/definitions/task' } } },
    retrieve: { 200: { definitions: { task: Task }, $ref: '#/definitions/task' } },
    hidesSecret: true
  },
  { name: "content map with 'application/json'", list: { 200: json(Tasks) }, retrieve: { 200: json(Task) }, hidesSecret: true },
  {
    name: "content map with '*/*'",
    list: { 200: { content: { 'text/csv': { schema: { type: 'string' } }, '*/*': { schema: Tasks } } } },
    retrieve: { 200: { content: { '*/*': { schema: Task } } } },
    hidesSecret: true
  },
  { name: "'2xx'", list: { '2xx': Tasks, 404: { type: 'object' } }, retrieve: { '2XX': Task }, hidesSecret: true },
  { name: "'default'", list: { default: Tasks }, retrieve: { default: json(Task) }, hidesSecret: true },
  { name: "'200' before '2xx' and 'default'", list: { default: { type: 'array' }, '2xx': { type: 'array' }, 200: Tasks }, retrieve: { default: {}, 200: Task }, hidesSecret: true },
  { name: 'no response schema: every column, as REST sends it', list: undefined, retrieve: { 404: { type: 'object' } }, hidesSecret: false }
]

async function formApp (t: Test, dialect: Dialect, form: Form): Promise<{ app: FastifyInstance, db: Knex, table: string }> {
  const { app, db, tables: table } = await appFixture(t, {
    dialect,
    tables: tasksTable('forms'),
    routes: async (app, db, table) => {
      const all = (): Knex.QueryBuilder => db(table).orderBy(`${table}.id`)
      await app.register(async (scope) => {
        form.setup?.(scope)
        scope.get('/tasks', {
          schema: form.list === undefined ? {} : { response: form.list },
          config: { realtime: { model: table, queryset: all } }
        }, async (request) => await app.realtime.list(request))
        scope.get('/tasks/:id', {
          schema: { params: { type: 'object', properties: { id: { type: 'integer' } } }, ...(form.retrieve === undefined ? {} : { response: form.retrieve }) },
          config: { realtime: { model: table, queryset: all } }
        }, async (request) => await app.realtime.retrieve(request))
      })
    }
  })
  return { app, db, table }
}

/** The text of a frame's `data` or `instance` (always its last field), checked against the parsed frame. */
function fieldText (t: Test, client: TestClient, frame: Frame, field: 'data' | 'instance'): string {
  const raw = client.raw(frame)
  const marker = `,"${field}":`
  const text = raw.slice(raw.indexOf(marker) + marker.length, -1)
  t.same(JSON.parse(text), frame[field], `the ${field} text is the frame's ${field}`)
  return text
}

async function restBody (app: FastifyInstance, url: string): Promise<string> {
  const response = await app.inject(url)
  return response.body
}

function checkForms (dialect: Dialect): void {
  for (const form of forms) {
    t.test(`${dialect}: ${form.name}`, async (t) => {
      const { app, db, table } = await formApp(t, dialect, form)
      await db(table).insert({ title: 'a', owner_id: 1 })
      const client = await TestClient.connect(app)
      t.teardown(() => { client.close() })

      const list = await client.subscribe({ id: 'l', path: '/tasks', snapshot: true })
      const listText = fieldText(t, client, list, 'data')
      t.equal(listText, await restBody(app, '/tasks'), 'the list snapshot is the REST body, byte for byte')
      const one = await client.subscribe({ id: 'r', path: '/tasks/1', snapshot: true })
      t.equal(fieldText(t, client, one, 'data'), await restBody(app, '/tasks/1'), 'the retrieve snapshot is the REST body')

      await db(table).insert({ title: 'b', owner_id: 2 })
      const created = await client.next((frame) => frame.type === 'broadcast' && frame.id === 'l')
      t.equal(created.action, 'CREATED')
      t.equal(await restBody(app, '/tasks'), `${listText.slice(0, -1)},${fieldText(t, client, created, 'instance')}]`,
        "the CREATED instance is the new row's part of the REST array")

      await db(table).where({ id: 1 }).update({ title: 'a!' })
      const updated = await client.next((frame) => frame.type === 'broadcast' && frame.id === 'r')
      t.equal(updated.action, 'UPDATED')
      t.equal(fieldText(t, client, updated, 'instance'), await restBody(app, '/tasks/1'), 'the UPDATED instance is the REST body')

      await db(table).where({ id: 1 }).del()
      const deleted = await client.next((frame) => frame.type === 'broadcast' && frame.id === 'r')
      t.equal(fieldText(t, client, deleted, 'instance'), '{"id":1}', 'DELETED carries the primary key')

      const texts = client.frames.map((frame) => client.raw(frame)).join('\n')
      if (form.hidesSecret) t.notMatch(texts, /secret|hunter2/, 'no column the schema leaves out')
      else t.match(texts, /"secret":"hunter2"/, 'without a schema every column goes, as REST sends it')
    })
  }
}

const withPostgres = await postgresAvailable()
if (!withPostgres) t.comment('PostgreSQL is not reachable: running the SQLite half only')

checkForms('sqlite')
if (withPostgres) {
  t.test('postgres', async (t) => {
  // the two forms that differ most from a raw row: a shared array by $ref, a content map
    for (const form of forms.filter((f) => f.name.startsWith('$ref array') || f.name.startsWith("content map with 'application"))) {
      await t.test(form.name, async (t) => {
        const { app, db, table } = await formApp(t, 'postgres', form)
        await db(table).insert([{ title: 'a', owner_id: 1 }, { title: 'b', owner_id: 1 }])
        const client = await TestClient.connect(app)
        t.teardown(() => { client.close() })
        const list = await client.subscribe({ id: 'l', path: '/tasks', snapshot: true })
        const listText = fieldText(t, client, list, 'data')
        t.equal(listText, await restBody(app, '/tasks'))
        await db(table).insert({ title: 'c', owner_id: 2 })
        const created = await client.next((frame) => frame.type === 'broadcast' && frame.id === 'l')
        t.equal(await restBody(app, '/tasks'), `${listText.slice(0, -1)},${fieldText(t, client, created, 'instance')}]`)
        t.notMatch(client.frames.map((frame) => client.raw(frame)).join('\n'), /secret|hunter2/)
      })
    }
  })
}

t.test("a refetch route's frames are its own answer's bytes", async (t) => {
  const pretty = async (t: Test, dialect: Dialect, body: (table: string, db: Knex) => Promise<string>): Promise<void> => {
    const { app, db, tables: table } = await appFixture(t, {
      dialect,
      tables: tasksTable('refetch_bytes'),
      routes: (app, db, table) => {
        // an answer the handler serialized itself (no queryset: the plugin re-runs the route)
        app.get('/tasks', { config: { realtime: { model: table } } }, async (_request, reply) => await reply.type('application/json').send(await body(table, db)))
        app.get('/tasks/:id', { config: { realtime: { model: table } } }, async (request, reply) => {
          const items = JSON.parse(await body(table, db)) as Array<{ id: number }>
          const at = items.findIndex((item) => String(item.id) === (request.params as { id: string }).id)
          // the array's element, cut out of the text as it is
          if (at === -1) return await reply.code(404).send({ message: 'not found' })
          return await reply.type('application/json').send(elementTexts(await body(table, db))[at])
        })
      }
    })
    await db(table).insert({ title: 'a', owner_id: 1 })
    const client = await TestClient.connect(app)
    t.teardown(() => { client.close() })
    const list = await client.subscribe({ id: 'l', path: '/tasks', snapshot: true })
    // the elements keep the answer's bytes; only the whitespace between them is not kept
    t.equal(fieldText(t, client, list, 'data'), `[${elementTexts(await restBody(app, '/tasks')).join(',')}]`, 'the snapshot is made of the answer\'s elements, whitespace and all')
    const one = await client.subscribe({ id: 'r', path: '/tasks/1', snapshot: true })
    t.equal(fieldText(t, client, one, 'data'), await restBody(app, '/tasks/1'))
    await db(table).insert({ title: 'b', owner_id: 1 })
    const created = await client.next((frame) => frame.type === 'broadcast' && frame.id === 'l')
    t.equal(fieldText(t, client, created, 'instance'), elementTexts(await restBody(app, '/tasks'))[1], "the CREATED instance is the element's text")
    await db(table).where({ id: 1 }).update({ title: 'a!' })
    const updated = await client.next((frame) => frame.type === 'broadcast' && frame.id === 'r')
    t.equal(fieldText(t, client, updated, 'instance'), await restBody(app, '/tasks/1'))
    await db(table).where({ id: 1 }).del()
    const deleted = await client.next((frame) => frame.type === 'broadcast' && frame.id === 'l' && frame.action === 'DELETED')
    t.equal(fieldText(t, client, deleted, 'instance'), '{"id":1}')
  }

  await t.test('sqlite, a pretty-printed answer', async (t) => {
    await pretty(t, 'sqlite', async (table, db) => JSON.stringify(await db(table).select('id', 'title').orderBy('id'), null, 2))
  })
  if (withPostgres) {
    await t.test('postgres, an answer built by the database (jsonb text)', async (t) => {
      await pretty(t, 'postgres', async (table, db) => {
        const result = await db.raw(`select coalesce(jsonb_agg(jsonb_build_object('id', id, 'title', title) order by id), '[]'::jsonb)::text as body from ${table}`) as { rows: Array<{ body: string }> }
        return (result.rows[0] as { body: string }).body
      })
    })
  }
})

/** The text of each element of a JSON array of objects, for the test's own answers (no braces inside strings). */
function elementTexts (text: string): string[] {
  const elements: string[] = []
  let depth = 0
  let start = 0
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '{' && depth++ === 0) start = i
    else if (text[i] === '}' && --depth === 0) elements.push(text.slice(start, i + 1))
  }
  return elements
}

/** The error starting an app with these routes fails with. */
async function startError (t: Test, declare: (app: FastifyInstance) => void): Promise<Error & { code?: string }> {
  try {
    await appFixture(t, { routes: declare })
  } catch (err) {
    return err as Error & { code?: string }
  }
  throw new Error('the app started')
}

t.test('forms no serializer can be derived from are refused at startup, naming the route and the fix', async (t) => {
  const realtime = { model: 'tasks' }
  const refusals: Array<[string, (app: FastifyInstance) => void, RegExp]> = [
    ['a content map without a JSON media type', (app) => {
      app.get('/vnd', { schema: { response: { 200: { content: { 'application/vnd.api+json': { schema: Tasks } } } } }, config: { realtime } }, async () => [])
    }, /route GET \/vnd .*'200' response is a per-content-type map without 'application\/json' or '\*\/\*'.*add content\['application\/json'\]/],
    ['a list route answering an object (a page)', (app) => {
      app.get('/pages', { schema: { response: { 200: { type: 'object', properties: { items: Tasks, total: { type: 'integer' } } } } }, config: { realtime } }, async () => ({}))
    }, /route GET \/pages .*it is a list route \(its URL has no ':id' parameter\), but its '200' response schema is not an array.*\{ type: 'array', items: <row schema> \}/],
    ['a list route answering a shared object schema', (app) => {
      app.addSchema({ $id: 'page', type: 'object', properties: { items: Tasks } })
      app.get('/shared-page', { schema: { response: { '2xx': { $ref: 'page#' } } }, config: { realtime: { ...realtime, lookup: 'key' } } }, async () => ({}))
    }, /route GET \/shared-page .*no ':key' parameter\), but its '2xx' response schema is not an array/],
    ['a tuple', (app) => {
      app.get('/tuple', { schema: { response: { default: { type: 'array', items: [Task, Task] } } }, config: { realtime } }, async () => [])
    }, /route GET \/tuple .*'default' response schema's items is a list of schemas \(a tuple\).*give it one items schema/]
  ]
  for (const [name, declare, message] of refusals) {
    await t.test(name, async (t) => {
      const err = await startError(t, declare)
      t.equal(err.code, 'FST_REST_LIVE_UNSERIALIZABLE_ROUTE')
      t.match(err.message, message)
    })
  }
})

t.test('the primary key check follows $refs, even to a schema added after the route', async (t) => {
  const realtime = { model: 'tasks' }
  const { properties } = Task
  const titleOnly = { type: 'object', properties: { title: properties.title } }
  const cases: Array<[string, (app: FastifyInstance) => void, string]> = [
    ['items by $ref', (app) => {
      app.addSchema({ $id: 'title-only', ...titleOnly })
      app.get('/titles', { schema: { response: { 200: { type: 'array', items: { $ref: 'title-only#' } } } }, config: { realtime } }, async () => [])
    }, '/titles'],
    ['the array by $ref, added after the route', (app) => {
      app.get('/later', { schema: { response: { 200: { $ref: 'later#' } } }, config: { realtime } }, async () => [])
      app.addSchema({ $id: 'later', type: 'array', items: titleOnly })
    }, '/later'],
    ['a retrieve route in a content map', (app) => {
      app.get('/titles/:id', { schema: { response: { 200: json({ $ref: '#/definitions/t', definitions: { t: titleOnly } }) } }, config: { realtime } }, async () => ({}))
    }, '/titles/:id']
  ]
  for (const [name, declare, url] of cases) {
    await t.test(name, async (t) => {
      const err = await startError(t, declare)
      t.equal(err.code, 'FST_REST_LIVE_INVALID_ROUTE_CONFIG')
      t.match(err.message, `route ${url} has an invalid config.realtime: its response schema drops the primary key 'id'`)
    })
  }
})

t.test('what the startup check cannot follow', async (t) => {
  const list = { url: '/x', kind: 'list' as const, lookup: 'id', pk: 'id' }
  const refuse = (schema: unknown, schemas: Record<string, unknown> = {}): unknown => successResponse(list, { response: { 200: schema } }, schemas)
  t.throws(() => refuse({ $ref: 'missing#' }), { code: 'FST_REST_LIVE_UNSERIALIZABLE_ROUTE', message: /route GET \/x .*a \$ref that does not lead to a schema added with app\.addSchema\(\)/ })
  t.throws(() => refuse({ $ref: 'a#anchor' }, { a: Tasks }), { code: 'FST_REST_LIVE_UNSERIALIZABLE_ROUTE' }, 'named anchors are not followed')
  const loop: Record<string, unknown> = { $ref: 'loop#' }
  t.throws(() => refuse(loop, { loop }), { code: 'FST_REST_LIVE_UNSERIALIZABLE_ROUTE' }, 'a $ref loop ends')
  t.throws(() => refuse({ $ref: 'a#/nope' }, { a: Tasks }), { code: 'FST_REST_LIVE_UNSERIALIZABLE_ROUTE' }, 'a pointer to nothing')
  t.throws(() => refuse({ $ref: 'a#/type/0' }, { a: Tasks }), { code: 'FST_REST_LIVE_UNSERIALIZABLE_ROUTE' }, 'a pointer through a non-schema')
  t.throws(() => refuse(true), { code: 'FST_REST_LIVE_UNSERIALIZABLE_ROUTE', message: /is not an array/ }, 'a boolean schema')
  t.same(refuse({ $ref: 'a' }, { a: Tasks }), { status: '200', contentType: undefined }, 'a $ref without a fragment')
  t.same(refuse({ $ref: 'a#/items/~0odd~1name' }, { a: { items: { '~odd/name': Tasks } } }), { status: '200', contentType: undefined }, 'escaped pointer parts')
  t.same(refuse({ type: ['array', 'null'], items: { $ref: 'nowhere#' } }), { status: '200', contentType: undefined }, 'items the check cannot follow are not checked for the key')
  t.same(refuse({ type: 'array' }), { status: '200', contentType: undefined }, 'an array of anything')
  t.equal(successResponse(list, { response: { 404: {} } }, {}), undefined, 'no success schema')
  t.equal(successResponse(list, undefined, {}), undefined, 'no schema')
})
