/**
 * Runs the tutorial's examples (examples/tutorial) as a reader would: each
 * section's file as its own plain `node` process (none of tap's
 * instrumentation), against this checkout's lib/ and SQLite or PostgreSQL.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { WebSocket } from 'ws'
import { DATABASE_URL, postgres, type Dialect } from './db.js'

export const tutorialDir = fileURLToPath(new URL('../../examples/tutorial/', import.meta.url))
const resolveSelf = fileURLToPath(new URL('./resolve-self.mjs', import.meta.url))
// lib/ as JavaScript, from the compiled files `npm test` keeps (no build step, no compiler in the child)
const tsLoader = fileURLToPath(new URL('./ts-loader.mjs', import.meta.url))

/** How long a child may take to start or answer: generous, the machine may be busy. */
const PATIENCE_MS = 60_000

/** A scratch directory for the sections' SQLite files; removed by `cleanup`. */
export interface Workspace {
  dir: string
  /** Environment for a child: this checkout's lib/ as the package, and nothing of tap's. */
  env: (extra: Record<string, string>) => NodeJS.ProcessEnv
  cleanup: () => Promise<void>
}

export async function workspace (): Promise<Workspace> {
  const dir = await mkdtemp(join(tmpdir(), 'rest-live-tutorial-'))
  const env = (extra: Record<string, string>): NodeJS.ProcessEnv => {
    const base: NodeJS.ProcessEnv = {}
    for (const [key, value] of Object.entries(process.env)) {
      if (!/^(NODE_OPTIONS|NODE_V8_COVERAGE|TAP|_TAPJS|TS_NODE|DATABASE_URL|SQLITE_FILE)/.test(key)) base[key] = value
    }
    return {
      ...base,
      REST_LIVE_LIB_URL: new URL('../../lib/index.ts', import.meta.url).href,
      REST_LIVE_CLIENT_URL: new URL('../../lib/client/index.ts', import.meta.url).href,
      HOST: '127.0.0.1',
      PORT: '0',
      ...extra
    }
  }
  return { dir, env, cleanup: async () => { await rm(dir, { recursive: true, force: true }) } }
}

/** A database for one section's run: a fresh SQLite file, or a fresh PostgreSQL schema. */
export interface Database {
  env: Record<string, string>
  drop: () => Promise<void>
}

let databases = 0
export async function database (dialect: Dialect, ws: Workspace): Promise<Database> {
  const n = ++databases
  if (dialect === 'sqlite') return { env: { SQLITE_FILE: join(ws.dir, `tasks-${n}.db`) }, drop: async () => {} }
  const schema = `tutorial_${process.pid}_${n}`
  const admin = postgres()
  await admin.raw('create schema ??', [schema])
  await admin.destroy()
  const url = new URL(DATABASE_URL)
  url.searchParams.set('options', `-c search_path=${schema}`)
  return {
    env: { DATABASE_URL: url.href },
    drop: async () => {
      const db = postgres()
      await db.raw('drop schema if exists ?? cascade', [schema])
      await db.destroy()
    }
  }
}

/** A running section file. */
export interface Server {
  /** http://127.0.0.1:<port> */
  url: string
  /** ws://127.0.0.1:<port>/ws/subscribe */
  ws: string
  output: () => string
  stop: () => Promise<void>
}

function launch (file: string, args: string[], env: NodeJS.ProcessEnv): { child: ChildProcess, output: () => string } {
  // tap's process tracking puts its loader back into NODE_OPTIONS of every child it sees spawned
  // (about a second of CPU each, and coverage hooks in the examples): `env -u` takes it out again
  const node = ['env', '-u', 'NODE_OPTIONS', process.execPath, '--import', tsLoader, '--import', resolveSelf, file, ...args]
  const child = spawn(node[0] as string, node.slice(1), { cwd: tutorialDir, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  return { child, output: () => output }
}

/** Starts `file` (relative to examples/tutorial) and resolves once it listens. */
export async function start (file: string, env: NodeJS.ProcessEnv): Promise<Server> {
  const { child, output } = launch(file, [], env)
  const exited = once(child, 'exit')
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`${file} did not start within ${PATIENCE_MS} ms:\n${output()}`)) }, PATIENCE_MS)
    const onData = (): void => {
      const match = /Server listening at (http:\/\/[\d.]+:\d+)/.exec(output())
      if (match?.[1] === undefined) return
      clearTimeout(timer)
      resolve(match[1])
    }
    child.stdout?.on('data', onData)
    exited.then(([code]) => {
      clearTimeout(timer)
      reject(new Error(`${file} exited (${String(code)}) before listening:\n${output()}`))
    }, reject)
  })
  return {
    url,
    ws: `${url.replace(/^http/, 'ws')}/ws/subscribe`,
    output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        await exited
      }
    }
  }
}

/** Runs `file` to completion. */
export async function run (file: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null, output: string }> {
  const { child, output } = launch(file, [], env)
  const [code] = await once(child, 'exit') as [number | null]
  return { code, output: output() }
}

export interface Frame {
  type: string
  id?: string | number | null
  [key: string]: unknown
}

/** A real WebSocket to a section's server that records frames and waits for the ones a test expects. */
export class Socket {
  readonly frames: Frame[] = []
  readonly #waiting: Array<{ predicate: (frame: Frame) => boolean, resolve: (frame: Frame) => void }> = []
  #requests = 0

  private constructor (readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const frame = JSON.parse(String(data)) as Frame
      this.frames.push(frame)
      for (const waiter of [...this.#waiting]) {
        if (!waiter.predicate(frame)) continue
        this.#waiting.splice(this.#waiting.indexOf(waiter), 1)
        waiter.resolve(frame)
      }
    })
  }

  static async open (url: string, headers: Record<string, string> = {}): Promise<Socket> {
    const socket = new WebSocket(url, { headers })
    await once(socket, 'open')
    return new Socket(socket)
  }

  /** The upgrade's refusal: resolves with the HTTP status the server answered. */
  static async refused (url: string, headers: Record<string, string> = {}): Promise<number> {
    const socket = new WebSocket(url, { headers })
    const [, response] = await once(socket, 'unexpected-response') as [unknown, { statusCode: number }]
    socket.on('error', () => {}) // terminating a socket still connecting emits one
    socket.terminate()
    return response.statusCode
  }

  send (frame: Frame): void {
    this.socket.send(JSON.stringify(frame))
  }

  /** The first frame, received or to come, that matches. */
  async next (predicate: (frame: Frame) => boolean, what = 'a frame'): Promise<Frame> {
    const seen = this.frames.find(predicate)
    if (seen !== undefined) return seen
    return await new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.frames)}`)) }, PATIENCE_MS)
      this.#waiting.push({ predicate, resolve: (frame) => { clearTimeout(timer); resolve(frame) } })
    })
  }

  /** Sends a frame and waits for the answer carrying its id. */
  async ask (frame: Frame & { id: string | number }): Promise<Frame> {
    const answer = this.next((f) => f.id === frame.id && f.type !== 'broadcast', `the answer to ${JSON.stringify(frame)}`)
    this.send(frame)
    return await answer
  }

  async request (method: string, path: string, body?: unknown): Promise<Frame> {
    return await this.ask({ type: 'request', id: `r${++this.#requests}`, method, path, ...(body === undefined ? {} : { body }) })
  }

  /** The broadcasts received for one subscription, as [action, instance]. */
  broadcasts (id: string | number): Array<[unknown, unknown]> {
    return this.frames.filter((f) => f.type === 'broadcast' && f.id === id).map((f) => [f.action, f.instance])
  }

  async broadcast (id: string | number, action: string, pk: number): Promise<Frame> {
    return await this.next((f) => f.type === 'broadcast' && f.id === id && f.action === action && (f.instance as { id: number }).id === pk, `${action} of ${pk} for subscription ${id}`)
  }

  close (): void {
    this.socket.terminate()
  }
}
