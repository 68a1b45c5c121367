/**
 * The channels-api protocol: takes `{ stream, payload }` frames off a socket
 * (beside the native protocol: ws/protocol.ts), runs each action as the app's
 * own route with the socket's credentials, and answers in channels-api's shape.
 *
 * `subscribe` becomes an ordinary subscription, authorised by the resource's
 * realtime GET route and re-checked against the subscriber's queryset like any
 * other, held in the socket's one subscription set; its events are built by
 * an EventSubscriber (events.ts).
 */
import { BadFrameError, NoRouteError, toFrameFailure } from '../errors.js'
import { parseJson } from '../json.js'
import type { RealtimeRoute } from '../registry/route-registry.js'
import type { SubscribeRequest } from '../subscriptions/manager.js'
import type { Subscription } from '../subscriptions/subscription.js'
import type { ConnectionContext } from '../ws/connection.js'
import { runAs, type Peer, type ShapedProtocol } from '../ws/protocol.js'
import { EVENT_ACTIONS, EventSubscriber } from './events.js'
import { answerFrame, echoOf, isChannelsFrame, validateChannelsFrame, type Answer, type ChannelsPayload, type Echo, type Pk } from './frames.js'
import type { Seal } from './permissions.js'
import { INVALID_ACTION, INVALID_PAGE, planAction, ResourceTable, type Resource } from './resource.js'

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

/** A route's answer as data: its JSON value, else its text (a refused one too: see json.ts). */
function parseBody (body: string): unknown {
  if (body === '') return undefined
  const parsed = parseJson(body)
  return parsed.ok ? parsed.value : body
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

/** The key of a channels-api subscription in the socket's set: stream, event action and pk. */
function keyOf (resource: Resource, action: string, pk: Pk | undefined): string {
  return `channels:${JSON.stringify([resource.stream, action, pk === undefined ? null : String(pk)])}`
}

/** The realtime retrieve route directly under a list route: `<list url>/:<lookup>`. */
function retrieveRoute (list: RealtimeRoute, routes: RealtimeRoute[]): RealtimeRoute | undefined {
  return routes.find((route) => route.kind === 'retrieve' && route.url === `${list.url}/:${route.lookup}`)
}

export class ChannelsProtocol implements ShapedProtocol {
  readonly resources = new ResourceTable()
  readonly #ctx: ConnectionContext
  readonly #seal: Seal
  /** Numbers the subscriptions' ids (`channels:<n>`: what `reauthorize(match)` sees) within this registration. */
  #subscriptionCount = 0

  constructor (ctx: ConnectionContext, seal: Seal) {
    this.#ctx = ctx
    this.#seal = seal
  }

  claims (value: unknown): boolean {
    return isChannelsFrame(value)
  }

  async serve (peer: Peer, value: unknown): Promise<void> {
    const echo = echoOf(value as Record<string, unknown>) // claimed: an object
    let answer: Answer | undefined
    try {
      const frame = validateChannelsFrame(value as Record<string, unknown>)
      const resource = this.resources.get(frame.stream)
      if (resource === undefined) {
        throw new NoRouteError(`no channels-api stream "${frame.stream}" (declared: ${this.resources.streams().join(', ') || 'none'}); declare it with app.realtime.resource()`)
      }
      answer = await this.#run(peer, resource, frame.payload, echo)
    } catch (err) {
      const failure = toFrameFailure(err)
      if (failure.statusCode === 500) this.#ctx.log.error({ err }, 'fastify-rest-live: channels-api frame failed')
      answer = { status: failure.statusCode, errors: [failure.message] }
    }
    if (answer !== undefined) peer.writer.reply(answerFrame(echo, answer))
  }

  async #run (peer: Peer, resource: Resource, payload: ChannelsPayload, echo: Echo): Promise<Answer | undefined> {
    const { pk, data } = targetOf(payload)
    const action = payload.action
    if (action === 'subscribe') return await this.#subscribe(peer, resource, pk, data, echo)
    if (action === 'unsubscribe') return await this.#unsubscribe(peer, resource, pk, data)
    const plan = planAction(this.#ctx.app, resource, action, pk, data)
    if (plan.kind === 'refuse') return { status: plan.status, errors: plan.errors }
    const response = await runAs(this.#ctx.app, peer.requester, plan.method, plan.url, plan.body, this.#seal.headers(resource.stream, action, pk))
    const status = response.statusCode
    const body = parseBody(response.body)
    if (status >= 400) return { status, errors: errorsOf(body, status) }
    if (plan.page !== undefined && Array.isArray(body)) return paginate(body, plan.page, resource.pageSize, status)
    // an empty answer (a 204 delete) is channels-api's `{}`
    return { status, data: body ?? {} }
  }

  async #subscribe (peer: Peer, resource: Resource, pk: Pk | undefined, data: unknown, echo: Echo): Promise<Answer | undefined> {
    const action = eventActionOf(data)
    const key = keyOf(resource, action, pk)
    const answer: Answer = { status: 200, data: pk === undefined ? { action } : { action, pk } }
    // subscribing twice is a no-op, as joining a channels group twice was
    if (peer.subscriptions.has(key)) return answer
    await peer.subscriptions.add(key, async () => await this.#start(peer, resource, action, pk, () => {
      peer.writer.reply(answerFrame(echo, answer))
    }))
    return undefined // answered when the manager acknowledged, before any event
  }

  async #start (peer: Peer, resource: Resource, action: string, pk: Pk | undefined, acknowledged: () => void): Promise<Subscription> {
    const { authorizer, manager, registry, revoker, view: viewFor } = this.#ctx
    const list = registry.byUrl(resource.prefix)
    if (list === undefined || list.kind !== 'list') throw new BadFrameError(INVALID_ACTION)
    // one instance's updates and deletes follow its retrieve route when it is realtime; anything else the list
    const retrieve = pk === undefined || action === 'create' ? undefined : retrieveRoute(list, registry.forModel(list.model))
    const url = retrieve === undefined ? resource.prefix : `${resource.prefix}/${encodeURIComponent(String(pk))}`
    const socket = peer.requester
    const requester = { ...socket, headers: { ...socket.headers, ...this.#seal.headers(resource.stream, 'subscribe', pk) } }
    const generation = revoker.generation
    const authorized = await authorizer.authorize(url, requester)
    const subscriber = new EventSubscriber(peer.writer, {
      stream: resource.stream,
      action,
      pk: pk === undefined ? undefined : String(pk),
      model: resource.model ?? authorized.route.model,
      acknowledged
    })
    const id = `channels:${++this.#subscriptionCount}`
    const grant = revoker.grant({
      id,
      protocol: 'channels',
      url,
      socket,
      requester,
      authorization: authorized,
      generation,
      channels: { stream: resource.stream, action, pk },
      end: (err) => { this.#revoked(peer, resource, action, pk, err) }
    })
    const request: SubscribeRequest = { id, subscriber, view: viewFor(authorized), snapshot: false, grant }
    if (authorized.lookupValue !== undefined) request.lookupValue = authorized.lookupValue
    return await manager.subscribe(request)
  }

  /**
   * A re-check refused an open subscription, which the manager already released
   * (revocation.ts): told as a refused `subscribe`, with no request to answer.
   */
  #revoked (peer: Peer, resource: Resource, action: string, pk: Pk | undefined, err: unknown): void {
    peer.subscriptions.forget(keyOf(resource, action, pk))
    const failure = toFrameFailure(err)
    const echo = { stream: resource.stream, action: 'subscribe', requestId: null }
    peer.writer.reply(answerFrame(echo, { status: failure.statusCode, data: pk === undefined ? { action } : { action, pk }, errors: [failure.message] }))
  }

  async #unsubscribe (peer: Peer, resource: Resource, pk: Pk | undefined, data: unknown): Promise<Answer> {
    const action = eventActionOf(data)
    if (!await peer.subscriptions.remove(keyOf(resource, action, pk))) return { status: 404, errors: ['Not subscribed'] }
    return { status: 200, data: pk === undefined ? { action } : { action, pk } }
  }
}
