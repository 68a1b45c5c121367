/**
 * A congested socket's drain, driven by a stand-in socket whose buffered
 * amount the test sets: the branches a real socket reaches only when the
 * kernel happens to drain slower or faster than the poll (test/backpressure.test.ts)
 * are each reached here on purpose.
 */
import { EventEmitter } from 'node:events'
import t from 'tap'
import type { WebSocket } from 'ws'
import { resolveOptions } from '../lib/options.js'
import { Connection, type ConnectionContext } from '../lib/ws/connection.js'
import { sqlite } from './helpers/db.js'

/** Just what Connection uses of a ws socket; `bufferedAmount` is whatever the test says. */
class StandInSocket extends EventEmitter {
  readonly OPEN = 1
  readonly CONNECTING = 0
  readyState = 1
  sent: string[] = []
  paused = false
  #buffered = 0
  #onPoll: (() => void) | undefined
  #onResume: (() => void) | undefined

  get bufferedAmount (): number {
    this.#onPoll?.()
    return this.#buffered
  }

  get buffered (): number {
    return this.#buffered
  }

  set buffered (bytes: number) {
    this.#buffered = bytes
  }

  /** Nothing is ever written out until the test says: each frame adds to the buffer. */
  send (frame: string): void {
    this.sent.push(frame)
    this.#buffered += frame.length
  }

  pause (): void { this.paused = true }
  resume (): void {
    this.paused = false
    this.#onResume?.()
  }

  close (): void { this.readyState = 3 }

  /** Resolves at the next read of bufferedAmount (the drain poll reading it). */
  async polled (): Promise<void> {
    await new Promise<void>((resolve) => { this.#onPoll = () => { this.#onPoll = undefined; resolve() } })
  }

  async resumed (): Promise<void> {
    await new Promise<void>((resolve) => { this.#onResume = () => { this.#onResume = undefined; resolve() } })
  }
}

t.test('a congested socket is polled until it drains below half, then read again', async (t) => {
  const db = sqlite()
  t.teardown(async () => { await db.destroy() })
  const socket = new StandInSocket()
  const options = resolveOptions({ knex: db, maxBufferedBytes: 1024 })
  const ctx = { options, log: { debug: () => {}, error: () => {} } } as unknown as ConnectionContext
  const connection = new Connection(socket as unknown as WebSocket, { headers: {} }, ctx)
  t.teardown(() => { connection.close(1000, 'done') })

  const first = 'x'.repeat(2048)
  t.equal(connection.send(first), true, 'sent: the buffer filled only with it')
  t.equal(socket.paused, true, 'congested: reading stops')
  t.equal(connection.send('second'), false, 'a broadcast while congested is refused')
  connection.reply('an answer')
  t.same(socket.sent, [first, 'an answer'], 'answers are never dropped')

  // the first poll still finds it full (over half of maxBufferedBytes): it polls again
  socket.buffered = 600
  await socket.polled()
  t.equal(socket.paused, true, 'still over half: still congested')
  const resumed = socket.resumed()
  socket.buffered = 100
  await resumed
  t.equal(socket.paused, false, 'drained below half: read again')
  t.equal(connection.send('third'), true, 'and broadcasts flow')
})
