/**
 * A congested socket's drain, driven by a stand-in socket whose buffered
 * amount the test sets and whose frames are written out when the test says
 * (by calling ws's send callbacks): the branches a real socket reaches only
 * when the kernel happens to drain slower or faster (test/backpressure.test.ts)
 * are each reached here on purpose, and no clock is involved.
 */
import { EventEmitter } from 'node:events'
import FakeTimers from '@sinonjs/fake-timers'
import t from 'tap'
import { resolveOptions } from '../lib/options.js'
import { Connection, type ConnectionContext, type ConnectionSocket } from '../lib/ws/connection.js'
import { NativeProtocol } from '../lib/ws/native.js'
import { ProtocolTable } from '../lib/ws/protocol.js'
import { SocketWriter, type WritableSocket } from '../lib/ws/writer.js'
import { sqlite } from './helpers/db.js'

/** Just what the writer and the connection use of a ws socket; nothing is written out until the test says. */
class StandInSocket extends EventEmitter {
  readonly OPEN = 1
  readonly CONNECTING = 0
  readyState = 1
  sent: string[] = []
  paused = false
  bufferedAmount = 0
  readonly #callbacks: Array<(err?: Error) => void> = []

  /** Each frame adds to the buffer; its callback waits for writeOut(). */
  send (frame: string, callback: (err?: Error) => void): void {
    this.sent.push(frame)
    this.bufferedAmount += frame.length
    this.#callbacks.push(callback)
  }

  /** The oldest queued frame is written out, leaving `left` bytes queued. */
  writeOut (left: number): void {
    this.bufferedAmount = left
    this.#callbacks.shift()?.()
  }

  pause (): void { this.paused = true }
  resume (): void { this.paused = false }
  close (): void { this.readyState = 3 }
}

t.test('a congested writer is told of the drain by the socket\'s send callbacks, without a timer', async (t) => {
  const clock = FakeTimers.install()
  t.teardown(() => { clock.uninstall() })
  const socket = new StandInSocket()
  const events: string[] = []
  const writer = new SocketWriter(socket as unknown as WritableSocket, 1024, {
    congested: () => { events.push('congested') },
    drained: () => { events.push('drained') }
  })

  const first = 'x'.repeat(2048)
  t.equal(writer.send(first), true, 'sent: the buffer filled only with it')
  t.equal(writer.congested, true)
  t.same(events, ['congested'])
  t.equal(writer.send('second'), false, 'a broadcast while congested is refused')
  writer.reply('an answer')
  t.same(socket.sent, [first, 'an answer'], 'answers are never dropped')
  t.same(events, ['congested'], 'told once')
  t.equal(clock.countTimers(), 0, 'nothing polls the socket')

  socket.writeOut(600)
  t.equal(writer.congested, true, 'a frame written out, but still over half: still congested')
  socket.writeOut(100)
  t.equal(writer.congested, false, 'drained below half')
  t.same(events, ['congested', 'drained'])
  t.equal(clock.now, 0, 'the drain was noticed without the clock moving')
  t.equal(writer.send('third'), true, 'and broadcasts flow')
  socket.writeOut(0)
  t.same(events, ['congested', 'drained'], 'a frame written out while not congested tells nothing')

  // bytes that are not ours (ws's pong to a ping) keep nothing congested once all of ours are written out
  socket.bufferedAmount = 900
  t.equal(writer.send('y'.repeat(200)), true)
  t.equal(writer.congested, true)
  socket.writeOut(900)
  t.equal(writer.congested, false, 'every frame written out: drained, whatever else is queued')
  t.same(events, ['congested', 'drained', 'congested', 'drained'])

  writer.close()
  t.equal(writer.send('after close'), true, 'a closed writer writes nothing, and asks nobody to stop')
  t.equal(socket.sent.includes('after close'), false)
})

t.test('a congested connection stops reading, and reads again (held frames first) once its writer drains', async (t) => {
  const db = sqlite()
  t.teardown(async () => { await db.destroy() })
  const socket = new StandInSocket()
  const options = resolveOptions({ knex: db, maxBufferedBytes: 1024 })
  const resynced: unknown[] = []
  const ctx = {
    options,
    log: { debug: () => {}, error: () => {} },
    manager: { resync: (subscription: unknown) => { resynced.push(subscription) }, unsubscribe: () => {} }
  } as unknown as ConnectionContext
  const native = new NativeProtocol(ctx)
  const connection = new Connection(socket as unknown as ConnectionSocket, { headers: {} }, ctx, { table: new ProtocolTable([], native), native })
  t.teardown(() => { connection.close(1000, 'done') })

  socket.bufferedAmount = 1000
  socket.emit('message', Buffer.from('x'), true)
  t.match(socket.sent[0], /binary frames are not accepted/, 'the answer is written')
  t.equal(socket.paused, true, 'congested: reading stops')
  socket.emit('message', Buffer.from('{"type":"hello"}'), false)
  t.equal(socket.sent.length, 1, 'a frame ws had already read waits')
  socket.writeOut(100)
  t.equal(socket.paused, false, 'drained below half: read again')
  t.match(socket.sent[1], /unknown frame type \\"hello\\"/, 'the held frame was served first')
})
