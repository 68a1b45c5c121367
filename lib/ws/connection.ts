/**
 * One client socket, the transport: reads frames, enforces the per-socket
 * limits, parses each frame once and hands it to the protocol its shape
 * names (protocol.ts), and keeps what the socket holds on the server bounded:
 * - every frame out goes through the socket's one writer (writer.ts), which
 *   stops broadcasts to a congested socket and resyncs them once it drains;
 * - answers are never dropped, so instead the socket is not read while it is
 *   congested, nor while MAX_FRAMES_IN_FLIGHT of its frames are being served:
 *   a client that sends and never reads only slows itself down.
 * The subscriptions of both protocols live in one set (socket-subscriptions.ts).
 */
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import type { WebSocket } from 'ws'
import { BadFrameError, FrameTooLargeError, RateLimitedError } from '../errors.js'
import { parseJson } from '../json.js'
import type { ResolvedOptions } from '../options.js'
import type { RouteRegistry } from '../registry/route-registry.js'
import type { AuthorizedView, Requester, SubscriptionAuthorizer } from '../subscriptions/authorizer.js'
import type { SubscriptionManager } from '../subscriptions/manager.js'
import type { Revoker } from '../subscriptions/revocation.js'
import type { ViewSource } from '../subscriptions/view.js'
import type { NativeProtocol } from './native.js'
import type { Peer, ProtocolTable } from './protocol.js'
import { SocketSubscriptions } from './socket-subscriptions.js'
import { SocketWriter } from './writer.js'

/** What every connection shares. */
export interface ConnectionContext {
  app: FastifyInstance
  log: FastifyBaseLogger
  options: ResolvedOptions
  registry: RouteRegistry
  manager: SubscriptionManager
  authorizer: SubscriptionAuthorizer
  /** Re-runs subscriptions' checks later (revocation, expiry). */
  revoker: Pick<Revoker, 'generation' | 'grant'>
  /** The view an authorised subscription follows (subscriptions/view.ts viewOf, wired once in index.ts). */
  view: (authorized: AuthorizedView) => ViewSource
}

/** The protocols a socket speaks; `native` also answers what cannot be read as a frame at all. */
export interface Protocols {
  table: ProtocolTable
  native: NativeProtocol
}

/** Frames of one socket served at once; the socket is not read while this many are (each may hold an answer). */
export const MAX_FRAMES_IN_FLIGHT = 32

const NOT_JSON = 'frame is not valid JSON; expected an object like {"type":"subscribe","id":1,...}'
const POISONED = 'frame has a "__proto__" key, or a "constructor" holding a "prototype": refused (prototype poisoning); rename the field'

/** Just what a connection uses of a ws socket. */
export type ConnectionSocket = Pick<WebSocket, 'on' | 'send' | 'bufferedAmount' | 'pause' | 'resume' | 'close' | 'readyState' | 'OPEN' | 'CONNECTING'>

export class Connection {
  readonly #socket: ConnectionSocket
  readonly #options: ResolvedOptions
  readonly #protocols: Protocols
  readonly #peer: Peer
  readonly #writer: SocketWriter
  readonly #subscriptions: SocketSubscriptions
  #tokens: number
  #lastRefill = Date.now()
  #closed = false
  /** Frames being served (answer not written yet). */
  #inFlight = 0
  #readingPaused = false
  /** Frames ws had already read when reading was paused; served before the socket is read again. */
  readonly #held: Array<{ data: Buffer, isBinary: boolean }> = []
  #servingHeld = false

  constructor (socket: ConnectionSocket, requester: Requester, ctx: ConnectionContext, protocols: Protocols) {
    this.#socket = socket
    this.#options = ctx.options
    this.#protocols = protocols
    this.#tokens = ctx.options.maxFramesPerSecond
    this.#writer = new SocketWriter(socket, ctx.options.maxBufferedBytes, {
      congested: () => { this.#updateReading() },
      drained: () => {
        this.#updateReading()
        this.#subscriptions.resyncStale()
      }
    })
    this.#subscriptions = new SocketSubscriptions(ctx.manager, ctx.options.maxSubscriptions)
    this.#peer = { requester, writer: this.#writer, subscriptions: this.#subscriptions }
    socket.on('message', (data, isBinary) => { this.#onMessage(data as Buffer, isBinary) })
    socket.on('close', () => { this.#teardown() })
    socket.on('error', (err) => { ctx.log.debug({ err }, 'fastify-rest-live: socket error') })
  }

  close (code: number, reason: string): void {
    if (this.#socket.readyState === this.#socket.OPEN || this.#socket.readyState === this.#socket.CONNECTING) {
      this.#socket.close(code, reason)
    }
    this.#teardown()
  }

  #onMessage (data: Buffer, isBinary: boolean): void {
    // pause() stops the socket, but ws still emits the frames of the chunk it was reading
    if (this.#readingPaused) this.#held.push({ data, isBinary })
    else this.#receive(data, isBinary)
  }

  #refuse (err: unknown): void {
    this.#protocols.native.sendError(this.#peer, null, err)
  }

  #receive (data: Buffer, isBinary: boolean): void {
    if (this.#closed) return
    if (!this.#takeToken()) return
    if (data.length > this.#options.maxPayload) {
      this.#refuse(new FrameTooLargeError(data.length, this.#options.maxPayload))
      return
    }
    if (isBinary) {
      this.#refuse(new BadFrameError('binary frames are not accepted; send JSON text frames'))
      return
    }
    // parsed here, once: the protocol its shape picks validates it, once
    const parsed = parseJson(data.toString('utf8'))
    if (!parsed.ok) {
      this.#refuse(new BadFrameError(parsed.poisoned ? POISONED : NOT_JSON))
      return
    }
    this.#serve(this.#protocols.table.handlerOf(parsed.value).serve(this.#peer, parsed.value))
  }

  /** Counts a frame being served until its answer is written: the socket is not read while too many are. */
  #serve (work: Promise<void>): void {
    this.#inFlight++
    this.#updateReading()
    const done = (): void => {
      this.#inFlight--
      this.#updateReading()
    }
    /* c8 ignore start: every handler answers its own failures; this is only a last resort */
    const failed = (err: unknown): void => {
      done()
      this.#refuse(err)
    }
    /* c8 ignore stop */
    work.then(done, failed)
  }

  /** Whether frames must wait: the socket is congested, or MAX_FRAMES_IN_FLIGHT of its frames are being served. */
  #blocked (): boolean {
    return this.#writer.congested || this.#inFlight >= MAX_FRAMES_IN_FLIGHT
  }

  /** Serves the frames held back while it may, and reads the socket only while nothing is held back or blocked. */
  #updateReading (): void {
    if (this.#closed) return
    if (!this.#servingHeld) { // (serving one calls this again)
      this.#servingHeld = true
      for (let next = this.#blocked() ? undefined : this.#held.shift(); next !== undefined; next = this.#blocked() ? undefined : this.#held.shift()) {
        this.#receive(next.data, next.isBinary)
      }
      this.#servingHeld = false
    }
    const pause = this.#blocked() || this.#held.length > 0
    if (pause === this.#readingPaused) return
    this.#readingPaused = pause
    if (pause) this.#socket.pause()
    else this.#socket.resume()
  }

  /** Token bucket: a burst of maxFramesPerSecond, refilled at that rate; twice over closes the socket. */
  #takeToken (): boolean {
    const limit = this.#options.maxFramesPerSecond
    const now = Date.now()
    this.#tokens = Math.min(limit, this.#tokens + (now - this.#lastRefill) * limit / 1000)
    this.#lastRefill = now
    this.#tokens -= 1
    if (this.#tokens >= 0) return true
    if (this.#tokens < -limit) {
      this.close(1008, 'frame rate limit exceeded')
      return false
    }
    this.#refuse(new RateLimitedError(limit))
    return false
  }

  #teardown (): void {
    if (this.#closed) return
    this.#closed = true
    this.#writer.close()
    this.#held.length = 0
    this.#subscriptions.close()
  }
}
