/**
 * The connection side of channels-api: takes `{ stream, payload }` frames off a
 * socket (beside the native protocol), runs each action as the app's own route
 * with the socket's credentials, and answers in channels-api's shape.
 *
 * `subscribe` becomes an ordinary subscription, authorised by the resource's
 * realtime GET route and re-checked against the subscriber's queryset like any
 * other; an adapter subscriber turns its broadcasts into channels-api events.
 */
import type { Subscription, Subscriber } from '../subscriptions/subscription.js'
import { BadFrameError, NoRouteError, TooManySubscriptionsError, toFrameFailure } from '../errors.js'
import type { RealtimeRoute } from '../registry/route-registry.js'
import type { SubscriptionManager } from '../subscriptions/manager.js'
import { lastFieldText } from '../subscriptions/frames-out.js'
import { arrayItemTexts, memberText } from '../subscriptions/json-text.js'
import type { Connection, ConnectionContext, ConnectionExtra } from '../ws/connection.js'
import { answerFrame, echoOf, eventFrame, isChannelsFrame, validateChannelsFrame, type Answer, type ChannelsPayload, type Echo, type Pk } from './frames.js'
import { channelsHeaders } from './permissions.js'
import { INVALID_ACTION, INVALID_PAGE, planAction, ResourceTable, type Resource } from './resource.js'

/** The events a channels-api client subscribes to, by the broadcast action that carries them. */
export const EVENT_ACTIONS: Record<string, string> = { CREATED: 'create', UPDATED: 'update', DELETED: 'delete' }
const eventNames = Object.values(EVENT_ACTIONS)

function isObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/** The pk an action is about (payload.pk, else data.pk) and the data to send (without a pk taken from it). */
export function targetOf (payload: ChannelsPayload): { pk: Pk | undefined, data: unknown } {
  if (payload.pk !== undefined && payload.pk !== null) return { pk: payload.pk, data: payload.data }
  const data = payload.data
  if (isObject(data) && (typeof data.pk === 'string' || typeof data.pk === 'number')) {
    const { pk, ...rest } = data
    return { pk, data: rest }
  }
  return { pk: undefined, data }
}

function parseBody (body: string): unknown {
  if (body === '') return undefined
  try {
    return JSON.parse(body)
  } catch {
    return body
  }
}

/** An error answer's messages, channels-api style: a list. */
export function errorsOf (body: unknown, status: number): unknown[] {
  if (isObject(body)) {
    if (Array.isArray(body.errors)) return body.errors
    if (typeof body.message === 'string') return [body.message]
    return [body]
  }
  if (typeof body === 'string' && body !== '') return [body]
  return [`request failed with status ${status}`]
}

let subscriptionCounter = 0

export class ChannelsAdapter {
  readonly resources = new ResourceTable()
  readonly #ctx: ConnectionContext
  readonly #sessions = new WeakMap<Connection, ChannelsSession>()

  constructor (ctx: ConnectionContext) {
    this.#ctx = ctx
  }

  /** ConnectionContext.extraFrame: takes every frame shaped like channels-api's; resolves once it is answered. */
  readonly handleFrame = (connection: Connection, value: unknown): Promise<void> | undefined => {
    if (!isChannelsFrame(value)) return undefined
    return this.#handle(connection, value)
  }

  async #handle (connection: Connection, value: Record<string, unknown>): Promise<void> {
    const echo = echoOf(value)
    let answer: Answer | undefined
    try {
      const frame = validateChannelsFrame(value)
      const resource = this.resources.get(frame.stream)
      if (resource === undefined) {
        throw new NoRouteError(`no channels-api stream "${frame.stream}" (declared: ${this.resources.streams().join(', ') || 'none'}); declare it with app.realtime.resource()`)
      }
      answer = await this.#run(connection, resource, frame.payload, echo)
    } catch (err) {
      const failure = toFrameFailure(err)
      if (failure.statusCode === 500) this.#ctx.log.error({ err }, 'fastify-rest-live: channels-api frame failed')
      answer = { status: failure.statusCode, errors: [failure.message] }
    }
    if (answer !== undefined) connection.reply(answerFrame(echo, answer))
  }

  async #run (connection: Connection, resource: Resource, payload: ChannelsPayload, echo: Echo): Promise<Answer | undefined> {
    const { pk, data } = targetOf(payload)
    const action = payload.action
    if (action === 'subscribe') return await this.#session(connection).subscribe(resource, pk, data, echo)
    if (action === 'unsubscribe') return this.#session(connection).unsubscribe(resource, pk, data)
    const plan = planAction(this.#ctx.app, resource, action, pk, data)
    if (plan.kind === 'refuse') return { status: plan.status, errors: plan.errors }
    const response = await connection.inject(plan.method, plan.url, plan.body, channelsHeaders(resource.stream, action, pk))
    const status = response.statusCode
    const body = parseBody(response.body)
    if (status >= 400) return { status, errors: errorsOf(body, status) }
    if (plan.page !== undefined && Array.isArray(body)) return paginate(body, plan.page, resource.pageSize, status)
    // an empty answer (a 204 delete) is channels-api's `{}`
    return { status, data: body ?? {} }
  }

  #session (connection: Connection): ChannelsSession {
    let session = this.#sessions.get(connection)
    if (session === undefined) {
      session = new ChannelsSession(connection, this.#ctx)
      this.#sessions.set(connection, session)
      connection.attach(session)
    }
    return session
  }
}

/** One page of a list route's array, with its metadata beside `data` in the payload. */
export function paginate (items: unknown[], page: number, pageSize: number, status: number): Answer {
  const start = (page - 1) * pageSize
  if (page > 1 && start >= items.length) return { status: 404, errors: [INVALID_PAGE] }
  return {
    status,
    data: items.slice(start, start + pageSize),
    extra: { page, page_size: pageSize, count: items.length, has_next: start + pageSize < items.length }
  }
}

function eventActionOf (data: unknown): string {
  const action = isObject(data) ? data.action : undefined
  if (action === undefined) throw new BadFrameError('action required')
  if (typeof action !== 'string' || !eventNames.includes(action)) {
    throw new BadFrameError(`data.action must be one of ${eventNames.join(', ')}, got ${JSON.stringify(action)}`)
  }
  return action
}

type Entry = Subscription | Promise<Subscription | undefined>

/** A connection's channels-api subscriptions, keyed by stream, event action and pk. */
export class ChannelsSession implements ConnectionExtra {
  readonly #subscriptions = new Map<string, Entry>()
  readonly #connection: Connection
  readonly #ctx: ConnectionContext

  constructor (connection: Connection, ctx: ConnectionContext) {
    this.#connection = connection
    this.#ctx = ctx
  }

  get size (): number {
    return this.#subscriptions.size
  }

  async subscribe (resource: Resource, pk: Pk | undefined, data: unknown, echo: Echo): Promise<Answer | undefined> {
    const action = eventActionOf(data)
    const key = keyOf(resource, action, pk)
    const answer: Answer = { status: 200, data: pk === undefined ? { action } : { action, pk } }
    // subscribing twice is a no-op, as joining a channels group twice was
    if (this.#subscriptions.has(key)) return answer
    const { manager, options, registry } = this.#ctx
    if (this.#subscriptions.size + this.#connection.subscriptionCount >= options.maxSubscriptions) {
      throw new TooManySubscriptionsError(options.maxSubscriptions)
    }
    const list = registry.byUrl(resource.prefix)
    if (list === undefined || list.kind !== 'list') return { status: 400, errors: [INVALID_ACTION] }
    // one instance's updates and deletes follow its retrieve route when it is realtime; anything else the list
    const retrieve = pk === undefined || action === 'create' ? undefined : retrieveRoute(list, registry.forModel(list.model))
    const url = retrieve === undefined ? resource.prefix : `${resource.prefix}/${encodeURIComponent(String(pk))}`
    let failure: unknown
    const pending: Promise<Subscription | undefined> = this.#start(resource, action, pk, url, () => {
      this.#connection.reply(answerFrame(echo, answer))
    }).catch((err: unknown) => {
      if (this.#subscriptions.get(key) === pending) this.#subscriptions.delete(key)
      failure = err
      return undefined
    })
    this.#subscriptions.set(key, pending)
    const subscription = await pending
    if (subscription === undefined) throw failure
    if (this.#connection.closed || this.#subscriptions.get(key) !== pending) {
      // the socket closed or the client unsubscribed while the subscription started
      manager.unsubscribe(subscription)
    } else {
      this.#subscriptions.set(key, subscription)
    }
    return undefined // answered when the manager acknowledged, before any event
  }

  async #start (resource: Resource, action: string, pk: Pk | undefined, url: string, acknowledged: () => void): Promise<Subscription> {
    const { authorizer, manager, revoker, view: viewFor } = this.#ctx
    const requester = { ...this.#connection.requester, headers: { ...this.#connection.requester.headers, ...channelsHeaders(resource.stream, 'subscribe', pk) } }
    const generation = revoker.generation
    const authorized = await authorizer.authorize(url, requester)
    const view = viewFor(authorized)
    const subscriber = new EventSubscriber(this.#connection, {
      stream: resource.stream,
      action,
      pk: pk === undefined ? undefined : String(pk),
      pkField: authorized.route.pk,
      model: resource.model ?? authorized.route.model,
      acknowledged
    })
    const id = `channels:${++subscriptionCounter}`
    const grant = revoker.grant({
      id,
      protocol: 'channels',
      url,
      socket: this.#connection.requester,
      requester,
      authorization: authorized,
      generation,
      channels: { stream: resource.stream, action, pk },
      end: (err) => { this.#revoked(resource, action, pk, err) }
    })
    const request: Parameters<SubscriptionManager['subscribe']>[0] = { id, subscriber, view, snapshot: false, grant }
    if (authorized.lookupValue !== undefined) request.lookupValue = authorized.lookupValue
    return await manager.subscribe(request)
  }

  /**
   * A re-check refused an open subscription, which the manager already released
   * (revocation.ts): told as a refused `subscribe`, with no request to answer.
   */
  #revoked (resource: Resource, action: string, pk: Pk | undefined, err: unknown): void {
    this.#subscriptions.delete(keyOf(resource, action, pk))
    const failure = toFrameFailure(err)
    const echo = { stream: resource.stream, action: 'subscribe', requestId: null }
    this.#connection.reply(answerFrame(echo, { status: failure.statusCode, data: pk === undefined ? { action } : { action, pk }, errors: [failure.message] }))
  }

  unsubscribe (resource: Resource, pk: Pk | undefined, data: unknown): Answer {
    const action = eventActionOf(data)
    const key = keyOf(resource, action, pk)
    const entry = this.#subscriptions.get(key)
    if (entry === undefined) return { status: 404, errors: ['Not subscribed'] }
    this.#subscriptions.delete(key)
    // a pending one is released by subscribe() when it settles
    if (!(entry instanceof Promise)) this.#ctx.manager.unsubscribe(entry)
    return { status: 200, data: pk === undefined ? { action } : { action, pk } }
  }

  drained (): void {
    for (const entry of this.#subscriptions.values()) {
      if (!(entry instanceof Promise) && entry.stale) this.#ctx.manager.resync(entry)
    }
  }

  teardown (): void {
    for (const entry of this.#subscriptions.values()) {
      if (!(entry instanceof Promise)) this.#ctx.manager.unsubscribe(entry)
    }
    this.#subscriptions.clear()
  }
}

function keyOf (resource: Resource, action: string, pk: Pk | undefined): string {
  return JSON.stringify([resource.stream, action, pk === undefined ? null : String(pk)])
}

/** The realtime retrieve route directly under a list route: `<list url>/:<lookup>`. */
function retrieveRoute (list: RealtimeRoute, routes: RealtimeRoute[]): RealtimeRoute | undefined {
  return routes.find((route) => route.kind === 'retrieve' && route.url === `${list.url}/:${route.lookup}`)
}

export interface EventTarget {
  stream: string
  /** create | update | delete */
  action: string
  /** Only this instance's events (as a string), or every instance's. */
  pk: string | undefined
  pkField: string
  model: string
  /** Called when the manager acknowledges the subscription, before any event. */
  acknowledged: () => void
}

interface NativeFrame {
  type: 'subscribed' | 'broadcast' | 'resync'
  action?: string
}

/** A row's primary key, as written in its text, to compare with the pk a client sent (a string). */
function pkString (rowText: string, pkField: string): string | undefined {
  const text = memberText(rowText, pkField)
  return text?.startsWith('"') === true ? JSON.parse(text) as string : text
}

/**
 * Receives a subscription's native frames and sends the channels-api events
 * among them. One per channels-api subscription, sharing nothing: the rows it
 * forwards are the texts of its own subscription's frames, spliced as they are
 * (never re-encoded), so an event's `data` is the route's serialization.
 */
export class EventSubscriber implements Subscriber {
  readonly #connection: Pick<Subscriber, 'send'>
  readonly #target: EventTarget

  constructor (connection: Pick<Subscriber, 'send'>, target: EventTarget) {
    this.#connection = connection
    this.#target = target
  }

  send (frame: string, droppable?: boolean): boolean {
    const parsed = JSON.parse(frame) as NativeFrame
    const { stream, action, pk, pkField, model } = this.#target
    switch (parsed.type) {
      case 'subscribed':
        this.#target.acknowledged()
        return true
      case 'resync': {
        // channels-api had no such event: the server may have missed changes, so the client should reload
        const text = lastFieldText(frame, 'data')
        const data = pk !== undefined && text.startsWith('[')
          ? `[${arrayItemTexts(text).filter((row) => pkString(row, pkField) === pk).join(',')}]`
          : text
        return this.#connection.send(eventFrame(stream, 'resync', JSON.stringify(pk ?? null), data, model), droppable)
      }
      default: {
        if (EVENT_ACTIONS[parsed.action as string] !== action) return true
        const instance = lastFieldText(frame, 'instance')
        if (pk !== undefined && pkString(instance, pkField) !== pk) return true
        return this.#connection.send(eventFrame(stream, action, memberText(instance, pkField) ?? 'null', instance, model), droppable)
      }
    }
  }
}
