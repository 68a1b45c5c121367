/**
 * A test client over `app.injectWS`: records every frame and waits for the
 * ones a test expects.
 */
import type { FastifyInstance } from 'fastify'
import type { WebSocket } from 'ws'

export interface Frame {
  type: string
  id?: string | number | null
  [key: string]: unknown
}

export class TestClient {
  readonly frames: Frame[] = []
  /** The text each frame arrived as, to compare bytes (see `raw`). */
  readonly #texts = new WeakMap<Frame, string>()
  readonly #waiters: Array<{ predicate: (frame: Frame) => boolean, resolve: (frame: Frame) => void }> = []
  closed: { code: number, reason: string } | undefined

  constructor (readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const text = String(data)
      const frame = JSON.parse(text) as Frame
      this.#texts.set(frame, text)
      this.frames.push(frame)
      for (const waiter of [...this.#waiters]) {
        if (waiter.predicate(frame)) {
          this.#waiters.splice(this.#waiters.indexOf(waiter), 1)
          waiter.resolve(frame)
        }
      }
    })
    socket.on('close', (code, reason) => { this.closed = { code, reason: String(reason) } })
  }

  static async connect (app: FastifyInstance, headers: Record<string, string> = {}, path = '/ws/subscribe'): Promise<TestClient> {
    const socket = await app.injectWS(path, { headers })
    return new TestClient(socket)
  }

  send (frame: unknown): void {
    this.socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame))
  }

  /** The next frame (already received or still to come) matching the predicate, after `from`. */
  async next (predicate: (frame: Frame) => boolean, timeoutMs = 5000): Promise<Frame> {
    const seen = this.frames.find((frame) => predicate(frame) && !this.#taken.has(frame))
    if (seen !== undefined) {
      this.#taken.add(seen)
      return seen
    }
    return await new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`timed out waiting for a frame; got ${JSON.stringify(this.frames)}`)) }, timeoutMs)
      this.#waiters.push({
        predicate,
        resolve: (frame) => {
          clearTimeout(timer)
          this.#taken.add(frame)
          resolve(frame)
        }
      })
    })
  }

  readonly #taken = new Set<Frame>()

  /** Sends a frame and waits for the first answer carrying its id. */
  async ask (frame: { id: string | number, [key: string]: unknown }): Promise<Frame> {
    const answer = this.next((f) => f.id === frame.id && f.type !== 'broadcast')
    this.send(frame)
    return await answer
  }

  async subscribe (frame: Record<string, unknown> & { id: string | number }): Promise<Frame> {
    return await this.ask({ type: 'subscribe', ...frame })
  }

  async request (method: string, path: string, body?: unknown): Promise<Frame> {
    const id = `r${++requestCounter}`
    return await this.ask({ type: 'request', id, method, path, ...(body === undefined ? {} : { body }) })
  }

  /**
   * Waits until every change the server has received so far has been
   * re-checked and its broadcasts have reached this client: the server answers
   * a socket's frames in order, so once the answer to a no-op frame arrives,
   * everything written before it has arrived too.
   */
  async flush (app: FastifyInstance): Promise<void> {
    await app.realtime.settled()
    await this.ask({ type: 'unsubscribe', id: `__flush_${++requestCounter}` })
  }

  /** The text a frame arrived as. */
  raw (frame: Frame): string {
    return this.#texts.get(frame) as string
  }

  broadcasts (id: string | number): Frame[] {
    return this.frames.filter((frame) => frame.type === 'broadcast' && frame.id === id)
  }

  close (): void {
    this.socket.terminate()
  }
}

let requestCounter = 0
