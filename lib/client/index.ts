/**
 * fastify-rest-live/client: a small typed client for browsers and Node.
 *
 *   const live = new RestLiveClient('ws://localhost:3000/ws/subscribe')
 *   const tasks = live.subscribe<Task>({ model: 'tasks', action: 'list' }, {
 *     onChange: (view) => { render(view.rows) }
 *   })
 *   await tasks.ready
 *   await live.request('POST', '/tasks', { title: 'write docs' })
 *
 * It keeps one WebSocket, correlates answers by frame id, keeps each
 * subscription's rows current (snapshot, then CREATED / UPDATED / DELETED,
 * replaced whole on `resync`) and can reconnect and re-subscribe.
 *
 * No Node-only imports: the WebSocket implementation is `globalThis.WebSocket`
 * unless one is passed in the options (for example the `ws` package's).
 */

/** A frame id: the client numbers its frames 1, 2, 3… */
export type FrameId = string | number

/** A row as the REST route serializes it. */
export type Row = Record<string, unknown>

export type Scalar = string | number | boolean

/** Subscribe to the list route of a model (django-rest-live style). */
export interface ListTarget {
  model: string
  action: 'list'
  /** Path parameters of the route, e.g. `{ project_id: 7 }` for `/projects/:project_id/tasks`. */
  view_kwargs?: Record<string, Scalar>
  /** The query string, e.g. `{ done: false }`. */
  query_params?: Record<string, Scalar | Scalar[]>
}

/** Subscribe to one instance through the retrieve route of a model. */
export interface RetrieveTarget {
  model: string
  action: 'retrieve'
  /** The value of the route's lookup parameter (usually the id). */
  lookup_by: string | number
  view_kwargs?: Record<string, Scalar>
  query_params?: Record<string, Scalar | Scalar[]>
}

/** Subscribe to the URL a REST client would GET, e.g. `/projects/7/tasks?done=false`. */
export interface PathTarget {
  path: string
}

export type SubscribeTarget = ListTarget | RetrieveTarget | PathTarget

/** `HEAD` answers with the GET's status and a `null` body: a cheap check of access or existence. */
export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'

/** What a view holds: a list route's array, or a retrieve route's instance (null once gone). */
export type ViewData<T> = T[] | T | null

export interface SubscribedFrame<T> {
  type: 'subscribed'
  id: FrameId
  /** The view; always present for this client, which asks for a snapshot. */
  data?: ViewData<T>
}

export interface ChangedBroadcastFrame<T> {
  type: 'broadcast'
  id: FrameId
  model: string
  action: 'CREATED' | 'UPDATED'
  instance: T
}

export interface DeletedBroadcastFrame<T> {
  type: 'broadcast'
  id: FrameId
  model: string
  action: 'DELETED'
  /** At least the primary key. */
  instance: Partial<T>
}

export type BroadcastFrame<T> = ChangedBroadcastFrame<T> | DeletedBroadcastFrame<T>

export interface ResyncFrame<T> {
  type: 'resync'
  id: FrameId
  data: ViewData<T>
}

export interface UnsubscribedFrame {
  type: 'unsubscribed'
  id: FrameId
}

export interface ResponseFrame<B = unknown> {
  type: 'response'
  id: FrameId
  status: number
  body: B
}

export interface ErrorFrame {
  type: 'error'
  id: FrameId | null
  code: number
  message: string
}

/** Every frame the server sends. */
export type ServerFrame<T = Row> =
  | SubscribedFrame<T> | BroadcastFrame<T> | ResyncFrame<T>
  | UnsubscribedFrame | ResponseFrame | ErrorFrame

/** The frames that change a view, as handed to `onChange`. */
export type ViewFrame<T> = SubscribedFrame<T> | BroadcastFrame<T> | ResyncFrame<T>

/**
 * Why a subscription or request failed. `code` is the HTTP status the server
 * answered in an `error` frame (400, 401, 403, 404, 409, 413, 429, 500), the
 * WebSocket close code when the connection ended first (1000, 1001, 1006,
 * 1008, 1009…), or 0 for a failure on the client's side.
 */
export class RestLiveError extends Error {
  readonly code: number
  constructor (code: number, message: string) {
    super(message)
    this.name = 'RestLiveError'
    this.code = code
  }
}

/** The answer to `request()`: the route's status and parsed body, as REST would give them. */
export interface RestResponse<B = unknown> {
  status: number
  body: B
}

/** The part of the WebSocket API the client uses; both the browser's and `ws`'s fit. */
export interface WebSocketLike {
  readonly readyState: number
  send (data: string): void
  close (code?: number, reason?: string): void
  addEventListener (type: 'open' | 'error', listener: () => void): void
  addEventListener (type: 'message', listener: (event: { data: unknown }) => void): void
  addEventListener (type: 'close', listener: (event: { code: number, reason: string }) => void): void
}

export type WebSocketConstructor = new (url: string) => WebSocketLike

export interface RestLiveClientOptions {
  /** The WebSocket implementation (default `globalThis.WebSocket`). In Node < 22 pass `ws`'s. */
  WebSocket?: WebSocketConstructor
  /**
   * Reconnect when the connection drops, then re-subscribe every live view
   * (each gets a fresh snapshot). `true` waits 1 s first, a number that many
   * milliseconds; the wait doubles after each failed attempt, up to 30 s.
   * Default false.
   */
  reconnect?: boolean | number
  /** Called each time the socket opens (again). */
  onOpen?: () => void
  /** Called each time the socket closes unexpectedly (not after `close()`), before any reconnect. */
  onClose?: (code: number, reason: string) => void
  /** Errors no subscription or request owns (rate limit, a frame the server could not read…). */
  onError?: (error: RestLiveError) => void
}

export interface LiveViewOptions<T extends object> {
  /** The primary-key field of the rows (default `'id'`), as in the route's `config.realtime.pk`. */
  pk?: string
  /** Called after the view changed, with the frame that changed it. */
  onChange?: (view: LiveView<T>, frame: ViewFrame<T>) => void
  /** Called when the server refuses the subscription (also after a reconnect), or ends it later (docs/revocation.md). */
  onError?: (error: RestLiveError) => void
}

export type ConnectionStatus = 'connecting' | 'open' | 'closed'

/**
 * A view's rows by primary key. Keys are stored as strings (a JSON object key
 * is one); `get`, `has` take the number too: `byKey.get(7)` finds the row
 * `byKey.get('7')` does.
 */
export interface RowsByKey<T> extends ReadonlyMap<string, T> {
  get (key: string | number): T | undefined
  has (key: string | number): boolean
}

class RowMap<T> extends Map<string, T> implements RowsByKey<T> {
  override get (key: string | number): T | undefined {
    return super.get(String(key))
  }

  override has (key: string | number): boolean {
    return super.has(String(key))
  }
}

const MAX_RECONNECT_DELAY_MS = 30_000

function noop (): void {}

/**
 * One subscription's current view: rows keyed by primary key, in the order the
 * server gave them (new rows are appended).
 */
export class LiveView<T extends object = Row> {
  readonly id: number
  readonly target: SubscribeTarget
  /** Resolves once the server has acknowledged the subscription and the rows hold its snapshot. */
  readonly ready: Promise<LiveView<T>>
  readonly #rows = new RowMap<T>()
  readonly #options: LiveViewOptions<T>
  readonly #pk: string
  readonly #detach: () => void
  #resolve: (view: LiveView<T>) => void = noop
  #reject: (error: RestLiveError) => void = noop
  #settled = false
  #active = true

  /** Made by `RestLiveClient.subscribe`. */
  constructor (id: number, target: SubscribeTarget, options: LiveViewOptions<T>, detach: () => void) {
    this.id = id
    this.target = target
    this.#options = options
    this.#pk = options.pk ?? 'id'
    this.#detach = detach
    this.ready = new Promise<LiveView<T>>((resolve, reject) => {
      this.#resolve = resolve
      this.#reject = reject
    })
    this.ready.catch(noop) // the failure also reaches onError; awaiting `ready` is optional
  }

  /** The rows, in order. For a retrieve subscription: zero or one. */
  get rows (): T[] {
    return [...this.#rows.values()]
  }

  /** The rows by primary key: `byKey.get(7)` and `byKey.get('7')` find the same row. */
  get byKey (): RowsByKey<T> {
    return this.#rows
  }

  /** For a retrieve subscription: the instance, or null once it is gone. */
  get instance (): T | null {
    return this.rows[0] ?? null
  }

  /** False once unsubscribed, refused, or the client closed. */
  get active (): boolean {
    return this.#active
  }

  /** Stops following the view; its rows stay as they were. */
  unsubscribe (): void {
    if (!this.#active) return
    this.#end(new RestLiveError(0, 'unsubscribed before the server answered'))
    this.#detach()
  }

  /** The frame that opens this subscription on a socket. @internal */
  subscribeFrame (): string {
    return JSON.stringify({ type: 'subscribe', id: this.id, ...this.target, snapshot: true })
  }

  /** Applies a frame addressed to this subscription. @internal */
  receive (frame: ViewFrame<T>): void {
    if (frame.type === 'broadcast') {
      const key = String((frame.instance as Row)[this.#pk])
      if (frame.action === 'DELETED') this.#rows.delete(key)
      else this.#rows.set(key, frame.instance)
    } else {
      this.#replace(frame.data)
    }
    if (frame.type === 'subscribed' && !this.#settled) {
      this.#settled = true
      this.#resolve(this)
    }
    this.#options.onChange?.(this, frame)
  }

  /** The server refused the subscription. @internal */
  fail (error: RestLiveError): void {
    this.#end(error)
    this.#options.onError?.(error)
  }

  /** The subscription is over: a `ready` still waiting is rejected with `error`. @internal */
  end (error: RestLiveError): void {
    this.#end(error)
  }

  #end (error: RestLiveError): void {
    this.#active = false
    if (!this.#settled) {
      this.#settled = true
      this.#reject(error)
    }
  }

  #replace (data: ViewData<T> | undefined): void {
    this.#rows.clear()
    const items = Array.isArray(data) ? data : data == null ? [] : [data]
    for (const item of items) this.#rows.set(String((item as Row)[this.#pk]), item)
  }
}

interface PendingRequest {
  id: number
  frame: string
  sent: boolean
  resolve: (response: RestResponse<unknown>) => void
  reject: (error: RestLiveError) => void
}

/** One WebSocket to a fastify-rest-live server, carrying subscriptions and REST requests. */
export class RestLiveClient {
  readonly url: string
  readonly #WebSocket: WebSocketConstructor
  readonly #options: RestLiveClientOptions
  readonly #reconnectDelay: number | undefined
  readonly #views = new Map<FrameId, LiveView<object>>()
  readonly #requests = new Map<FrameId, PendingRequest>()
  #socket: WebSocketLike
  #status: ConnectionStatus = 'connecting'
  #delay: number
  #timer: ReturnType<typeof setTimeout> | undefined
  #nextId = 1

  constructor (url: string, options: RestLiveClientOptions = {}) {
    const implementation = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
    if (implementation === undefined) {
      throw new TypeError('fastify-rest-live/client: no WebSocket implementation here; pass one as options.WebSocket (in Node: import { WebSocket } from \'ws\')')
    }
    this.url = url
    this.#WebSocket = implementation
    this.#options = options
    this.#reconnectDelay = options.reconnect === true ? 1000 : typeof options.reconnect === 'number' ? options.reconnect : undefined
    this.#delay = this.#reconnectDelay ?? 0
    this.#socket = this.#connect()
  }

  get status (): ConnectionStatus {
    return this.#status
  }

  /** Follows a realtime GET route; the view always starts from a snapshot. */
  subscribe<T extends object = Row>(target: SubscribeTarget, options: LiveViewOptions<T> = {}): LiveView<T> {
    if (this.#status === 'closed') throw new RestLiveError(0, 'fastify-rest-live/client: subscribe() after close()')
    const id = this.#nextId++
    const view = new LiveView<T>(id, target, options, () => { this.#forget(id) })
    this.#views.set(view.id, view as unknown as LiveView<object>)
    if (this.#status === 'open') this.#send(view.subscribeFrame())
    return view
  }

  /**
   * Runs a route over the socket as an HTTP request with the socket's
   * credentials would. Any status resolves (a 404 answer is an answer); the
   * promise rejects only for an `error` frame or when the connection ends first.
   */
  async request<B = unknown>(method: HttpMethod, path: string, body?: unknown): Promise<RestResponse<B>> {
    if (this.#status === 'closed') throw new RestLiveError(0, 'fastify-rest-live/client: request() after close()')
    const id = this.#nextId++
    const frame = JSON.stringify(body === undefined ? { type: 'request', id, method, path } : { type: 'request', id, method, path, body })
    return await new Promise<RestResponse<B>>((resolve, reject) => {
      const pending: PendingRequest = { id, frame, sent: false, resolve: resolve as PendingRequest['resolve'], reject }
      this.#requests.set(id, pending)
      if (this.#status === 'open') this.#sendRequest(pending)
    })
  }

  /** Closes the socket for good: pending requests and unacknowledged subscriptions reject with code 1000. */
  close (): void {
    if (this.#status === 'closed') return
    clearTimeout(this.#timer)
    this.#socket.close(1000, 'client closed')
    this.#shutdown(1000, 'client closed')
  }

  #connect (): WebSocketLike {
    const socket = new this.#WebSocket(this.url)
    socket.addEventListener('open', () => { this.#onOpen() })
    socket.addEventListener('message', (event) => { this.#onMessage(event.data) })
    socket.addEventListener('close', (event) => { this.#onClose(event.code, event.reason) })
    socket.addEventListener('error', noop) // a close event follows; `ws` throws on an unheard error
    return socket
  }

  #onOpen (): void {
    this.#status = 'open'
    this.#delay = this.#reconnectDelay ?? 0
    this.#options.onOpen?.()
    for (const view of this.#views.values()) this.#send(view.subscribeFrame())
    for (const pending of this.#requests.values()) if (!pending.sent) this.#sendRequest(pending)
  }

  #onMessage (data: unknown): void {
    let frame: ServerFrame<object>
    try {
      // JSON.parse, not the server's lib/json.ts: this runs in browsers, without secure-json-parse, on the server's own frames
      frame = JSON.parse(String(data)) as ServerFrame<object>
    } catch {
      this.#options.onError?.(new RestLiveError(0, `unreadable frame from the server: ${String(data).slice(0, 100)}`))
      return
    }
    switch (frame.type) {
      case 'subscribed':
      case 'broadcast':
      case 'resync':
        this.#views.get(frame.id)?.receive(frame)
        break
      case 'response': {
        const pending = this.#requests.get(frame.id)
        if (pending === undefined) break
        this.#requests.delete(frame.id)
        pending.resolve({ status: frame.status, body: frame.body })
        break
      }
      case 'error':
        this.#onErrorFrame(frame)
        break
      // 'unsubscribed' needs nothing: the view was forgotten when unsubscribe() was called
    }
  }

  #onErrorFrame (frame: ErrorFrame): void {
    const error = new RestLiveError(frame.code, frame.message)
    const pending = frame.id === null ? undefined : this.#requests.get(frame.id)
    const view = frame.id === null ? undefined : this.#views.get(frame.id)
    if (pending !== undefined) {
      this.#requests.delete(pending.id)
      pending.reject(error)
    } else if (view !== undefined) {
      this.#views.delete(view.id)
      view.fail(error)
    } else {
      this.#options.onError?.(error)
    }
  }

  #onClose (code: number, reason: string): void {
    if (this.#status === 'closed') return
    this.#options.onClose?.(code, reason)
    const error = new RestLiveError(code, `connection closed (${code}${reason === '' ? '' : ` ${reason}`}) before the server answered`)
    for (const [id, pending] of this.#requests) {
      // a request that reached the server may or may not have run: not retried
      if (!pending.sent) continue
      this.#requests.delete(id)
      pending.reject(error)
    }
    if (this.#reconnectDelay === undefined) {
      this.#shutdown(code, reason)
      return
    }
    this.#status = 'connecting'
    this.#timer = setTimeout(() => { this.#socket = this.#connect() }, this.#delay)
    this.#delay = Math.min(this.#delay * 2, MAX_RECONNECT_DELAY_MS)
  }

  #shutdown (code: number, reason: string): void {
    this.#status = 'closed'
    const error = new RestLiveError(code, `connection closed (${code} ${reason})`)
    for (const pending of this.#requests.values()) pending.reject(error)
    this.#requests.clear()
    for (const view of this.#views.values()) view.end(error)
    this.#views.clear()
  }

  #forget (id: number): void {
    this.#views.delete(id)
    if (this.#status === 'open') this.#send(JSON.stringify({ type: 'unsubscribe', id }))
  }

  #sendRequest (pending: PendingRequest): void {
    pending.sent = true
    this.#send(pending.frame)
  }

  #send (frame: string): void {
    this.#socket.send(frame)
  }
}
