/**
 * One client socket: reads frames, enforces the per-socket limits, routes each
 * frame to subscribe / unsubscribe / request, and writes answers with
 * backpressure, so that what the server holds for one socket is bounded:
 * - a congested socket (more than maxBufferedBytes queued) stops receiving
 *   broadcasts and is resynced once it drains, instead of buffering without
 *   bound or losing changes silently;
 * - answers are never dropped, so instead the socket is not read while it is
 *   congested, nor while MAX_FRAMES_IN_FLIGHT of its frames are being served:
 *   a client that sends and never reads only slows itself down.
 */
import type { FastifyBaseLogger, FastifyInstance, HTTPMethods, LightMyRequestResponse } from 'fastify'
import type { WebSocket } from 'ws'
import {
  BadFrameError, DuplicateSubscriptionError, FrameTooLargeError, NoRouteError,
  RateLimitedError, TooManySubscriptionsError, toFrameFailure
} from '../errors.js'
import type { ResolvedOptions } from '../options.js'
import type { RealtimeRoute, RouteRegistry } from '../registry/route-registry.js'
import { injectOptions, type AuthorizedView, type Credentials, type Requester, type SubscriptionAuthorizer } from '../subscriptions/authorizer.js'
import type { SubscriptionManager } from '../subscriptions/manager.js'
import type { Revoker } from '../subscriptions/revocation.js'
import type { Subscriber, Subscription } from '../subscriptions/subscription.js'
import type { ViewSource } from '../subscriptions/view.js'
import { frameIdOf, parseJson, validateFrame, wellFormed, type RequestFrame, type SubscribeFrame, type UnsubscribeFrame } from './frames.js'

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
  /** Extra frame shapes (the channels-api adapter): the work of serving the frame when it took it, else undefined. */
  extraFrame?: (connection: Connection, value: unknown) => Promise<void> | undefined
}

/** Per-connection state kept outside this class (the channels-api adapter's subscriptions). */
export interface ConnectionExtra {
  /** Subscriptions it holds: they count towards maxSubscriptions. */
  readonly size: number
  /** The socket drained after congestion: resync what went stale. */
  drained (): void
  /** The socket closed: release everything. */
  teardown (): void
}

const DRAIN_POLL_MS = 20

/** Frames of one socket served at once; the socket is not read while this many are (each may hold an answer). */
export const MAX_FRAMES_IN_FLIGHT = 32

export class Connection implements Subscriber {
  readonly #socket: WebSocket
  readonly #ctx: ConnectionContext
  /** Who opened the socket: every request run on its behalf looks like theirs (see Requester). */
  readonly requester: Requester
  readonly #subscriptions = new Map<string, Subscription | Promise<Subscription | undefined>>()
  #tokens: number
  #lastRefill = Date.now()
  #drainTimer: NodeJS.Timeout | undefined
  #closed = false
  /** More than maxBufferedBytes were queued, and the socket has not drained below half of it since. */
  #congested = false
  /** Frames being served (answer not written yet). */
  #inFlight = 0
  #readingPaused = false
  /** Frames ws had already read when reading was paused; served before the socket is read again. */
  readonly #held: Array<{ data: Buffer, isBinary: boolean }> = []
  #servingHeld = false
  readonly #extras: ConnectionExtra[] = []

  constructor (socket: WebSocket, requester: Requester, ctx: ConnectionContext) {
    this.#socket = socket
    this.#ctx = ctx
    this.requester = requester
    this.#tokens = ctx.options.maxFramesPerSecond
    socket.on('message', (data, isBinary) => { this.#onMessage(data as Buffer, isBinary) })
    socket.on('close', () => { this.#teardown() })
    socket.on('error', (err) => { ctx.log.debug({ err }, 'fastify-rest-live: socket error') })
  }

  get subscriptionCount (): number {
    return this.#subscriptions.size
  }

  get closed (): boolean {
    return this.#closed
  }

  /** Ties extra per-connection state to this connection's drain and teardown. */
  attach (extra: ConnectionExtra): void {
    this.#extras.push(extra)
  }

  /** Writes an answer to a client frame: answers are never dropped for congestion (reading stops instead), only broadcasts are. */
  reply (frame: string): void {
    this.send(frame, false)
  }

  /** Writes a frame. False when the socket is congested: the caller should stop broadcasting to it. */
  send (frame: string, droppable = true): boolean {
    if (this.#closed) return true
    if (droppable && this.#socket.bufferedAmount > this.#ctx.options.maxBufferedBytes) {
      this.#congest()
      return false
    }
    this.#socket.send(frame)
    if (this.#socket.bufferedAmount > this.#ctx.options.maxBufferedBytes) this.#congest()
    return true
  }

  close (code: number, reason: string): void {
    if (this.#socket.readyState === this.#socket.OPEN || this.#socket.readyState === this.#socket.CONNECTING) {
      this.#socket.close(code, reason)
    }
    this.#teardown()
  }

  /** Answers a frame with an error; the connection stays open. */
  sendError (id: string | number | null, err: unknown): void {
    const failure = toFrameFailure(err)
    if (failure.statusCode === 500) this.#ctx.log.error({ err }, 'fastify-rest-live: frame failed')
    this.reply(JSON.stringify({ type: 'error', id, code: failure.statusCode, message: failure.message }))
  }

  #onMessage (data: Buffer, isBinary: boolean): void {
    // pause() stops the socket, but ws still emits the frames of the chunk it was reading
    if (this.#readingPaused) this.#held.push({ data, isBinary })
    else this.#receive(data, isBinary)
  }

  #receive (data: Buffer, isBinary: boolean): void {
    if (this.#closed) return
    if (!this.#takeToken()) return
    if (data.length > this.#ctx.options.maxPayload) {
      this.sendError(null, new FrameTooLargeError(data.length, this.#ctx.options.maxPayload))
      return
    }
    if (isBinary) {
      this.sendError(null, new BadFrameError('binary frames are not accepted; send JSON text frames'))
      return
    }
    let value: unknown
    try {
      value = parseJson(data.toString('utf8'))
    } catch (err) {
      this.sendError(null, err)
      return
    }
    const extra = this.#ctx.extraFrame?.(this, value)
    if (extra !== undefined) {
      this.#serve(extra)
      return
    }
    let frame
    try {
      frame = validateFrame(value)
    } catch (err) {
      this.sendError(frameIdOf(value), err)
      return
    }
    switch (frame.type) {
      case 'subscribe': this.#serve(this.#subscribe(frame)); break
      case 'unsubscribe': this.#serve(this.#unsubscribe(frame)); break
      case 'request': this.#serve(this.#request(frame)); break
    }
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
      this.sendError(null, err)
    }
    /* c8 ignore stop */
    work.then(done, failed)
  }

  /** Whether frames must wait: the socket is congested, or MAX_FRAMES_IN_FLIGHT of its frames are being served. */
  #blocked (): boolean {
    return this.#congested || this.#inFlight >= MAX_FRAMES_IN_FLIGHT
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

  /** More than maxBufferedBytes are queued: stop reading until the socket drains. */
  #congest (): void {
    if (!this.#congested) {
      this.#congested = true
      this.#updateReading()
    }
    this.#watchDrain()
  }

  /** Token bucket: a burst of maxFramesPerSecond, refilled at that rate; twice over closes the socket. */
  #takeToken (): boolean {
    const limit = this.#ctx.options.maxFramesPerSecond
    const now = Date.now()
    this.#tokens = Math.min(limit, this.#tokens + (now - this.#lastRefill) * limit / 1000)
    this.#lastRefill = now
    this.#tokens -= 1
    if (this.#tokens >= 0) return true
    if (this.#tokens < -limit) {
      this.close(1008, 'frame rate limit exceeded')
      return false
    }
    this.sendError(null, new RateLimitedError(limit))
    return false
  }

  async #subscribe (frame: SubscribeFrame): Promise<void> {
    const key = JSON.stringify(frame.id)
    if (this.#subscriptions.has(key)) {
      this.sendError(frame.id, new DuplicateSubscriptionError(key))
      return
    }
    if (this.#subscriptions.size + this.#extras.reduce((sum, extra) => sum + extra.size, 0) >= this.#ctx.options.maxSubscriptions) {
      this.sendError(frame.id, new TooManySubscriptionsError(this.#ctx.options.maxSubscriptions))
      return
    }
    const pending = this.#startSubscription(frame).catch((err: unknown) => {
      this.#subscriptions.delete(key)
      if (!this.#closed) this.sendError(frame.id, err)
      return undefined
    })
    this.#subscriptions.set(key, pending)
    const subscription = await pending
    if (subscription === undefined) return
    if (this.#closed || this.#subscriptions.get(key) !== pending) {
      // the socket closed or the client unsubscribed while the snapshot was read
      this.#ctx.manager.unsubscribe(subscription)
      return
    }
    this.#subscriptions.set(key, subscription)
  }

  async #startSubscription (frame: SubscribeFrame): Promise<Subscription> {
    const url = frame.path ?? this.#urlFor(frame)
    const { authorizer, revoker } = this.#ctx
    const generation = revoker.generation
    const authorized = await authorizer.authorize(url, this.requester)
    const request: Parameters<SubscriptionManager['subscribe']>[0] = {
      id: frame.id,
      subscriber: this,
      view: this.#ctx.view(authorized),
      snapshot: frame.snapshot === true,
      grant: revoker.grant({
        id: frame.id,
        protocol: 'native',
        url,
        socket: this.requester,
        requester: this.requester,
        authorization: authorized,
        generation,
        end: (err) => { this.#revoked(frame.id, err) }
      })
    }
    if (authorized.lookupValue !== undefined) request.lookupValue = authorized.lookupValue
    return await this.#ctx.manager.subscribe(request)
  }

  /** A re-check refused an open subscription, which the manager already released (revocation.ts). */
  #revoked (id: string | number, err: unknown): void {
    this.#subscriptions.delete(JSON.stringify(id))
    this.sendError(id, err)
  }

  /** The URL a django-rest-live style frame (model + action + kwargs) stands for. */
  #urlFor (frame: SubscribeFrame): string {
    const route = this.#ctx.registry.resolve(frame.model as string, frame.action as 'list' | 'retrieve')
    return buildUrl(route, frame)
  }

  async #unsubscribe (frame: UnsubscribeFrame): Promise<void> {
    const key = JSON.stringify(frame.id)
    const entry = this.#subscriptions.get(key)
    if (entry === undefined) {
      this.sendError(frame.id, new NoRouteError(`no subscription with id ${key} on this socket`))
      return
    }
    this.#subscriptions.delete(key)
    const subscription = await entry
    if (subscription !== undefined) this.#ctx.manager.unsubscribe(subscription)
    this.reply(JSON.stringify({ type: 'unsubscribed', id: frame.id }))
  }

  /** Runs a route exactly as an HTTP request from this socket's client would (same headers, same address). */
  async inject (method: HTTPMethods, url: string, body: unknown, extraHeaders: Credentials = {}): Promise<LightMyRequestResponse> {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    return await this.#ctx.app.inject(injectOptions(method, url, this.requester, extraHeaders, payload))
  }

  async #request (frame: RequestFrame): Promise<void> {
    try {
      const response = await this.inject(frame.method as HTTPMethods, frame.path, frame.body)
      const isJson = String(response.headers['content-type'] ?? '').includes('json')
      const body = response.body === '' ? 'null' : isJson ? response.body : JSON.stringify(response.body)
      this.reply(`{"type":"response","id":${JSON.stringify(frame.id)},"status":${response.statusCode},"body":${body}}`)
    } catch (err) {
      this.sendError(frame.id, err)
    }
  }

  #watchDrain (): void {
    if (this.#drainTimer !== undefined) return
    const check = (): void => {
      this.#drainTimer = undefined // teardown clears a pending timer, so the socket is still open here
      if (this.#socket.bufferedAmount > this.#ctx.options.maxBufferedBytes / 2) {
        this.#drainTimer = setTimeout(check, DRAIN_POLL_MS)
        return
      }
      this.#congested = false
      this.#updateReading()
      for (const entry of this.#subscriptions.values()) {
        if (!(entry instanceof Promise) && entry.stale) this.#ctx.manager.resync(entry)
      }
      for (const extra of this.#extras) extra.drained()
    }
    this.#drainTimer = setTimeout(check, DRAIN_POLL_MS)
  }

  #teardown (): void {
    if (this.#closed) return
    this.#closed = true
    if (this.#drainTimer !== undefined) clearTimeout(this.#drainTimer)
    this.#held.length = 0
    for (const entry of this.#subscriptions.values()) {
      if (entry instanceof Promise) continue // #subscribe unsubscribes it when it settles
      this.#ctx.manager.unsubscribe(entry)
    }
    this.#subscriptions.clear()
    for (const extra of this.#extras.splice(0)) extra.teardown()
  }
}

function encodeQuery (params: SubscribeFrame['query_params']): string {
  if (params === undefined) return ''
  const search = new URLSearchParams()
  for (const [name, value] of Object.entries(params)) {
    for (const item of Array.isArray(value) ? value : [value]) search.append(name, String(item))
  }
  const text = search.toString()
  return text === '' ? '' : `?${text}`
}

export function buildUrl (route: RealtimeRoute, frame: SubscribeFrame): string {
  // a Map, so that a route parameter named like an Object.prototype member finds nothing inherited
  const kwargs = new Map<string, { value: string | number | boolean, field: string }>()
  for (const [name, value] of Object.entries(frame.view_kwargs ?? {})) kwargs.set(name, { value, field: `view_kwargs.${name}` })
  if (frame.lookup_by !== undefined) kwargs.set(route.lookup, { value: frame.lookup_by, field: 'lookup_by' })
  for (const name of kwargs.keys()) {
    if (!route.params.includes(name)) {
      throw new BadFrameError(`view_kwargs has "${name}", which route ${route.url} does not take (its parameters: ${route.params.join(', ') || 'none'})`)
    }
  }
  const path = route.url.replace(/:([A-Za-z0-9_]+)(\([^)]*\))?/g, (_match, name: string) => {
    const kwarg = kwargs.get(name)
    if (kwarg === undefined) {
      // a missing lookup_by is refused with the frame; only other parameters can be missing here
      throw new BadFrameError(`route ${route.url} needs view_kwargs.${name}`)
    }
    const text = String(kwarg.value)
    // encodeURIComponent throws a URIError on a lone surrogate
    if (!wellFormed(text)) throw new BadFrameError(`invalid "${kwarg.field}" in subscribe frame: not well-formed Unicode (a lone surrogate)`)
    return encodeURIComponent(text)
  })
  return path + encodeQuery(frame.query_params)
}
