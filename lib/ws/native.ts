/**
 * The native protocol: `subscribe`, `unsubscribe` and `request` frames
 * (frames.ts), answered with native frames (frames-out.ts).
 */
import type { HTTPMethods } from 'fastify'
import { BadFrameError, DuplicateSubscriptionError, NoSubscriptionError, toFrameFailure } from '../errors.js'
import type { RealtimeRoute } from '../registry/route-registry.js'
import type { SubscribeRequest } from '../subscriptions/manager.js'
import type { Subscription } from '../subscriptions/subscription.js'
import type { ConnectionContext } from './connection.js'
import { frameIdOf, validateFrame, wellFormed, type RequestFrame, type SubscribeFrame, type UnsubscribeFrame } from './frames.js'
import { errorFrame, NativeSubscriber, responseFrame, unsubscribedFrame } from './frames-out.js'
import { runAs, type Peer, type Protocol } from './protocol.js'

/** The key of a native subscription in the socket's set (socket-subscriptions.ts). */
function keyOf (id: string | number): string {
  return `native:${JSON.stringify(id)}`
}

/** The protocol table's fallback: it serves every frame no other protocol claims, and says what a frame should look like. */
export class NativeProtocol implements Protocol {
  readonly #ctx: ConnectionContext

  constructor (ctx: ConnectionContext) {
    this.#ctx = ctx
  }

  async serve (peer: Peer, value: unknown): Promise<void> {
    let frame
    try {
      frame = validateFrame(value)
    } catch (err) {
      this.sendError(peer, frameIdOf(value), err)
      return
    }
    switch (frame.type) {
      case 'subscribe': await this.#subscribe(peer, frame); break
      case 'unsubscribe': await this.#unsubscribe(peer, frame); break
      case 'request': await this.#request(peer, frame); break
    }
  }

  /** Answers a frame with an error; the connection stays open. */
  sendError (peer: Pick<Peer, 'writer'>, id: string | number | null, err: unknown): void {
    const failure = toFrameFailure(err)
    if (failure.statusCode === 500) this.#ctx.log.error({ err }, 'fastify-rest-live: frame failed')
    peer.writer.reply(errorFrame(id, failure))
  }

  async #subscribe (peer: Peer, frame: SubscribeFrame): Promise<void> {
    const key = keyOf(frame.id)
    if (peer.subscriptions.has(key)) {
      this.sendError(peer, frame.id, new DuplicateSubscriptionError(JSON.stringify(frame.id)))
      return
    }
    try {
      // answered by the manager's `subscribed` call, before any broadcast
      await peer.subscriptions.add(key, async () => await this.#start(peer, frame))
    } catch (err) {
      if (!peer.subscriptions.closed) this.sendError(peer, frame.id, err)
    }
  }

  async #start (peer: Peer, frame: SubscribeFrame): Promise<Subscription> {
    const url = frame.path ?? this.#urlFor(frame)
    const { authorizer, revoker } = this.#ctx
    const requester = peer.requester
    const generation = revoker.generation
    const authorized = await authorizer.authorize(url, requester)
    const request: SubscribeRequest = {
      id: frame.id,
      subscriber: new NativeSubscriber(peer.writer),
      view: this.#ctx.view(authorized),
      snapshot: frame.snapshot === true,
      grant: revoker.grant({
        id: frame.id,
        protocol: 'native',
        url,
        socket: requester,
        requester,
        authorization: authorized,
        generation,
        end: (err) => {
          // the manager already released it (revocation.ts)
          peer.subscriptions.forget(keyOf(frame.id))
          this.sendError(peer, frame.id, err)
        }
      })
    }
    if (authorized.lookupValue !== undefined) request.lookupValue = authorized.lookupValue
    return await this.#ctx.manager.subscribe(request)
  }

  /** The URL a django-rest-live style frame (model + action + kwargs) stands for. */
  #urlFor (frame: SubscribeFrame): string {
    const route = this.#ctx.registry.resolve(frame.model as string, frame.action as 'list' | 'retrieve')
    return buildUrl(route, frame)
  }

  async #unsubscribe (peer: Peer, frame: UnsubscribeFrame): Promise<void> {
    if (!await peer.subscriptions.remove(keyOf(frame.id))) {
      this.sendError(peer, frame.id, new NoSubscriptionError(JSON.stringify(frame.id)))
      return
    }
    peer.writer.reply(unsubscribedFrame(frame.id))
  }

  async #request (peer: Peer, frame: RequestFrame): Promise<void> {
    try {
      const response = await runAs(this.#ctx.app, peer.requester, frame.method as HTTPMethods, frame.path, frame.body)
      const isJson = String(response.headers['content-type'] ?? '').includes('json')
      const body = response.body === '' ? 'null' : isJson ? response.body : JSON.stringify(response.body)
      peer.writer.reply(responseFrame(frame.id, response.statusCode, body))
    } catch (err) {
      this.sendError(peer, frame.id, err)
    }
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
