/**
 * One benchmark server, driven by its parent over IPC. `node server.js <system>`
 * where system is one of: ours, ws, socketio, mercurius, feathers.
 *
 * Commands (process.send replies carry the same `seq`):
 *   start { redis?, dbFile?, write? }  → { port }
 *   subscribers                       → { count }  (subscriptions the server has registered)
 *   write { kind: 'fanout', count } | { kind: 'distinct', owners } | { kind: 'steady', rate, seconds }
 *                                     → { t0 } sent before the first write; { done } after the last
 *   stats                             → { databaseChecks, memory }
 *   stop
 */
import { createServer } from 'node:http'
import knexFactory from 'knex'
import { serveCommands } from './ipc.js'

const system = process.argv[2]
const now = () => Number(process.hrtime.bigint())

const Task = {
  type: 'object',
  properties: { id: { type: 'integer' }, title: { type: 'string' }, owner_id: { type: 'integer' }, done: { type: 'boolean' } },
  required: ['id', 'title', 'owner_id', 'done']
}

let db
let impl
let subscriptions = 0

async function openDb (dbFile) {
  db = knexFactory({ client: 'better-sqlite3', connection: { filename: dbFile ?? ':memory:' }, useNullAsDefault: true, pool: { min: 1, max: 1 } })
  if (dbFile) await db.raw('pragma journal_mode = wal')
  if (!dbFile || process.env.BENCH_CREATE_TABLE === '1') {
    await db.schema.dropTableIfExists('tasks')
    await db.schema.createTable('tasks', (t) => {
      t.increments('id').primary()
      t.string('title').notNullable()
      t.integer('owner_id').notNullable()
      t.boolean('done').notNullable().defaultTo(false)
    })
  }
}

function taskRow (title, owner) {
  return { title, owner_id: owner, done: false }
}

/** Inserts and returns the rows, in chunks (SQLite's bound-parameter limit). */
async function insertRows (rows) {
  const out = []
  await db.transaction(async (trx) => {
    for (let i = 0; i < rows.length; i += 500) out.push(...await trx('tasks').insert(rows.slice(i, i + 500)).returning('*'))
  })
  return out
}

// ----------------------------------------------------------------------------- systems

const systems = {
  async ours ({ redis }) {
    const { default: Fastify } = await import('fastify')
    const { default: restLive } = await import('../dist/index.js')
    const app = Fastify({ logger: false })
    app.decorateRequest('userId', undefined)
    app.addHook('onRequest', async (request) => {
      const match = /^Bearer (\d+)$/.exec(request.headers.authorization ?? '')
      request.userId = match ? Number(match[1]) : undefined
    })
    await app.register(restLive, { knex: db, ...(redis ? { redis } : {}), maxSubscriptions: 10, maxFramesPerSecond: 1000 })
    const list = (url, queryset) => app.get(url, {
      schema: { response: { 200: { type: 'array', items: Task } } },
      config: { realtime: { model: 'tasks', queryset } },
      handler: async (request) => await app.realtime.list(request)
    })
    list('/tasks', () => db('tasks').orderBy('id'))
    list('/mine', (request) => db('tasks').where('owner_id', request.userId ?? 0).orderBy('id'))
    list('/like', () => db('tasks').whereLike('title', 'a%').orderBy('id'))
    list('/mine-like', (request) => db('tasks').where('owner_id', request.userId ?? 0).whereLike('title', 'a%').orderBy('id'))
    await app.listen({ port: 0, host: '127.0.0.1' })
    return {
      port: app.server.address().port,
      subscribers: () => app.realtime.stats().subscriptions,
      databaseChecks: () => app.realtime.stats().databaseChecks,
      write: async (rows) => { await db('tasks').insert(rows) },
      writeMany: async (rows) => { await insertRows(rows) },
      close: () => app.close()
    }
  },

  /** The limit: a plain ws loop sending one pre-serialized frame to every socket. */
  async ws () {
    const { WebSocketServer } = await import('ws')
    const server = createServer()
    const wss = new WebSocketServer({ server })
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
    let id = 0
    const frame = (row) => `{"type":"broadcast","id":1,"model":"tasks","action":"CREATED","instance":${JSON.stringify(row)}}`
    return {
      port: server.address().port,
      subscribers: () => wss.clients.size,
      write: async (rows) => {
        for (const row of rows) {
          const text = frame({ id: ++id, ...row })
          for (const client of wss.clients) client.send(text)
        }
      },
      close: () => { for (const c of wss.clients) c.terminate(); server.close() }
    }
  },

  async socketio ({ redis }) {
    const { Server } = await import('socket.io')
    const server = createServer()
    const io = new Server(server, { transports: ['websocket'], serveClient: false })
    if (redis) {
      const { createAdapter } = await import('@socket.io/redis-adapter')
      const { Redis } = await import('ioredis')
      const pub = new Redis(redis)
      const sub = pub.duplicate()
      io.adapter(createAdapter(pub, sub))
    }
    io.on('connection', (socket) => {
      const owner = socket.handshake.query.owner
      socket.join(owner ? `owner:${owner}` : 'all')
      subscriptions++
    })
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
    return {
      port: server.address().port,
      subscribers: () => subscriptions,
      // rooms, no filtering: the writer names the room
      write: async (rows) => {
        for (const row of rows) {
          const [created] = await db('tasks').insert(row).returning('*')
          io.to(['all', `owner:${created.owner_id}`]).emit('created', created)
        }
      },
      writeMany: async (rows) => {
        for (const created of await insertRows(rows)) io.to(`owner:${created.owner_id}`).emit('created', created)
      },
      close: () => { io.close() }
    }
  },

  async mercurius ({ redis }) {
    const { default: Fastify } = await import('fastify')
    const { default: mercurius } = await import('mercurius')
    const { withFilter } = mercurius
    const app = Fastify({ logger: false })
    const schema = `
      type Task { id: Int! title: String! owner_id: Int! done: Boolean! }
      type Query { tasks: [Task] }
      type Subscription { taskCreated(owner: Int): Task }`
    const filtered = withFilter(
      (root, args, { pubsub }) => pubsub.subscribe('TASK_CREATED'),
      (payload, args) => args.owner == null || payload.taskCreated.owner_id === args.owner
    )
    const resolvers = {
      Query: { tasks: async () => await db('tasks') },
      Subscription: {
        taskCreated: {
          subscribe: (root, args, ctx, info) => { subscriptions++; return filtered(root, args, ctx, info) }
        }
      }
    }
    let emitter
    if (redis) {
      const { default: mqemitterRedis } = await import('mqemitter-redis')
      const url = new URL(redis)
      emitter = mqemitterRedis({ host: url.hostname, port: Number(url.port || 6379) })
    }
    await app.register(mercurius, { schema, resolvers, subscription: emitter ? { emitter } : true })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const publish = (row) => app.graphql.pubsub.publish({ topic: 'TASK_CREATED', payload: { taskCreated: row } })
    return {
      port: app.server.address().port,
      subscribers: () => subscriptions,
      write: async (rows) => {
        for (const row of rows) {
          const [created] = await db('tasks').insert(row).returning('*')
          await publish(created)
        }
      },
      writeMany: async (rows) => {
        for (const created of await insertRows(rows)) await publish(created)
      },
      close: () => app.close()
    }
  },

  async feathers ({ redis }) {
    const { feathers } = await import('@feathersjs/feathers')
    const { default: socketio } = await import('@feathersjs/socketio')
    const { KnexService } = await import('@feathersjs/knex')
    const app = feathers()
    app.configure(socketio({ transports: ['websocket'], serveClient: false }, (io) => {
      io.use((socket, next) => {
        socket.feathers.owner = socket.handshake.query.owner
        next()
      })
    }))
    if (redis) {
      const { default: sync } = await import('feathers-sync')
      app.configure(sync({ uri: redis }))
    }
    app.use('tasks', new KnexService({ Model: db, name: 'tasks', multi: ['create'] }))
    app.on('connection', (connection) => {
      app.channel(connection.owner ? `owner/${connection.owner}` : 'all').join(connection)
      subscriptions++
    })
    app.service('tasks').publish('created', (task) => [app.channel('all'), app.channel(`owner/${task.owner_id}`)])
    const server = await app.listen(0)
    if (redis) await app.sync.ready
    return {
      port: server.address().port,
      subscribers: () => subscriptions,
      write: async (rows) => { for (const row of rows) await app.service('tasks').create(row) },
      writeMany: async (rows) => { for (let i = 0; i < rows.length; i += 500) await app.service('tasks').create(rows.slice(i, i + 500)) },
      close: () => server.close()
    }
  }
}

// ----------------------------------------------------------------------------- IPC

async function handle (message) {
  switch (message.cmd) {
    case 'start': {
      await openDb(message.dbFile)
      impl = await systems[system](message)
      return { port: impl.port }
    }
    case 'subscribers':
      return { count: impl.subscribers() }
    case 'write': {
      const { kind } = message
      if (kind === 'fanout') {
        process.send({ seq: message.seq, t0: now(), partial: true })
        for (let i = 0; i < message.count; i++) await impl.write([taskRow(`a${i}`, 1)])
      } else if (kind === 'distinct') {
        const rows = []
        for (let owner = 1; owner <= message.owners; owner++) rows.push(taskRow(`a${owner}`, owner))
        process.send({ seq: message.seq, t0: now(), partial: true })
        await (impl.writeMany ?? impl.write)(rows)
      } else if (kind === 'steady') {
        // one write every 1000/rate ms; the title carries the write's hrtime, for latency at the receiver
        const total = Math.round(message.rate * message.seconds)
        const interval = 1e9 / message.rate
        const start = now()
        process.send({ seq: message.seq, t0: start, partial: true })
        for (let i = 0; i < total; i++) {
          const due = start + i * interval
          const wait = (due - now()) / 1e6
          if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait))
          await impl.write([taskRow(`t${now()}`, 1)])
        }
      }
      return { done: now() }
    }
    case 'stats': {
      globalThis.gc?.()
      await new Promise((resolve) => setTimeout(resolve, 100))
      globalThis.gc?.()
      return { databaseChecks: impl?.databaseChecks?.() ?? null, memory: process.memoryUsage() }
    }
    case 'stop':
      try { await impl?.close() } catch {}
      setTimeout(() => process.exit(0), 50)
      return {}
    default:
      throw new Error(`unknown command ${message.cmd}`)
  }
}

serveCommands(handle)
