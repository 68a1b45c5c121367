/**
 * The protocols one socket speaks (native frames, channels-api frames), in a
 * table like mercurius' subscription protocols: a parsed frame's shape picks
 * its handler. A handler gets the socket as a `Peer`, which is all it may use
 * of it: who is asking, the one writer, the one subscription set.
 */
import type { FastifyInstance, HTTPMethods, LightMyRequestResponse } from 'fastify'
import { injectOptions, type Credentials, type Requester } from '../subscriptions/authorizer.js'
import type { SocketSubscriptions } from './socket-subscriptions.js'
import type { FrameSink } from './frames-out.js'

/** The socket's one writer (writer.ts), as protocols see it. */
export interface PeerWriter extends FrameSink {
  /** An answer to the client's own frame: never dropped. */
  reply (frame: string): void
}

/** What a protocol handler may use of the socket a frame came on. */
export interface Peer {
  /** Who opened the socket: every request run on its behalf looks like theirs (see Requester). */
  readonly requester: Requester
  readonly writer: PeerWriter
  readonly subscriptions: SocketSubscriptions
}

export interface Protocol {
  /** Validates and serves one frame (any JSON value, parsed once); resolves once it is answered (failures are answers too). */
  serve (peer: Peer, value: unknown): Promise<void>
}

/** A protocol recognised by its frames' shape. */
export interface ShapedProtocol extends Protocol {
  /** Whether a frame is this protocol's. */
  claims (value: unknown): boolean
}

/** Picks a frame's protocol: the first that claims it, else the fallback. */
export class ProtocolTable {
  readonly #protocols: ShapedProtocol[]
  readonly #fallback: Protocol

  /** @param fallback serves every frame no other protocol claims (and says what a frame should look like) */
  constructor (protocols: ShapedProtocol[], fallback: Protocol) {
    this.#protocols = protocols
    this.#fallback = fallback
  }

  handlerOf (value: unknown): Protocol {
    return this.#protocols.find((protocol) => protocol.claims(value)) ?? this.#fallback
  }
}

/** Runs a route exactly as an HTTP request from the socket's client would (same headers, same address). */
export async function runAs (app: FastifyInstance, requester: Requester, method: HTTPMethods, url: string, body: unknown, extraHeaders: Credentials = {}): Promise<LightMyRequestResponse> {
  const payload = body === undefined ? undefined : JSON.stringify(body)
  return await app.inject(injectOptions(method, url, requester, extraHeaders, payload))
}
