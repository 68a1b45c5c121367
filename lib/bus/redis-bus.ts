/**
 * The Redis bus: many nodes share changes over Redis pub/sub, one channel per
 * model (`${channelPrefix}:${model}`), with no silent loss.
 *
 * - Publishing: each event is wrapped in an envelope (origin node id and a
 *   per-channel serial, see redis-serial.ts) and serialized once.
 *   This node's own subscribers get the event directly, without a round trip
 *   (so they keep working while Redis is down); other nodes get it from Redis.
 *   A publish never throws into the writer: while Redis is unreachable ioredis
 *   queues commands and sends them in order on reconnect; one that fails
 *   anyway (its retries ran out) is logged and counted, and the next message
 *   on that channel, or a bare notice sent as soon as Redis is back, carries a
 *   drop flag that makes every receiver resync the model.
 * - Receiving: a dedicated subscriber connection, subscribed only to the
 *   models local subscribers follow (redis-interest.ts). A hole in a sender's
 *   serials, a drop flag, or a subscriber connection that dropped and came
 *   back (network, `CLIENT KILL`, client-output-buffer-limit) calls
 *   `listener.gap(models)`: the affected views are re-read and their
 *   subscribers get a `resync` frame, then live broadcasts resume.
 * - On a Redis Cluster the same with sharded pub/sub: SPUBLISH / SSUBSCRIBE,
 *   one subscriber connection per master (ioredis' `shardedSubscribers`). ioredis
 *   replaces a lost one (killed, node down, slots moved: MOVED or an unsolicited
 *   SUNSUBSCRIBE) and then emits `subscribersReady`; the bus takes that as a
 *   reconnect: it subscribes its channels again, waits for the answers, resyncs.
 */
import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Bus, BusListener, ChangeEvent, LocalChangeEvent } from './bus.js'
import { closeConnection, openRedisConnections, type Connection, type RedisConnections } from './redis-connections.js'
import { ChannelInterest } from './redis-interest.js'
import { decodeMessage, InboundSerials, OutboundSerials } from './redis-serial.js'

/** A warning about the messages of one channel is logged at most this often (per kind). */
const WARN_INTERVAL_MS = 60_000

export interface RedisBusOptions {
  /** A URL, ioredis options or an ioredis instance. */
  redis: unknown
  channelPrefix: string
  listener: BusListener
  log: FastifyBaseLogger
  /** How long each connection may take to be ready at startup (default 10 s). */
  startupTimeoutMs?: number
  /** This node's id on the bus (default: random, so a restarted node is a new origin). */
  nodeId?: string
  /** A model's primary-key column: events from other nodes whose rows lack it are refused (resync instead). */
  pkOf?: (model: string) => string | undefined
}

export async function createRedisBus (options: RedisBusOptions): Promise<RedisBus> {
  const nodeId = options.nodeId ?? randomBytes(8).toString('hex')
  const connections = await openRedisConnections({
    redis: options.redis,
    name: `${options.channelPrefix}:${nodeId}`,
    timeoutMs: options.startupTimeoutMs ?? 10_000
  })
  return new RedisBus(connections, { ...options, nodeId })
}

export class RedisBus implements Bus {
  readonly nodeId: string
  readonly #prefix: string
  readonly #listener: BusListener
  readonly #log: FastifyBaseLogger
  readonly #publisher: Connection
  readonly #subscriber: Connection
  /** A Redis Cluster: sharded pub/sub. */
  readonly #sharded: boolean
  readonly #ownsPublisher: boolean
  readonly #address: string
  readonly #interest: ChannelInterest
  readonly #outbound = new OutboundSerials()
  readonly #inbound = new InboundSerials()
  readonly #pkOf: ((model: string) => string | undefined) | undefined
  /** When each (kind, channel) warning was last logged. */
  readonly #warned = new Map<string, number>()
  /** Whether the subscriber connection is up (false between a drop and its resubscription). */
  #listening = true
  /** Whether publish failures are being reported already (logged once per outage). */
  #publishFailing = false
  #closed = false

  constructor (connections: RedisConnections, options: RedisBusOptions & { nodeId: string }) {
    this.nodeId = options.nodeId
    this.#prefix = options.channelPrefix
    this.#listener = options.listener
    this.#log = options.log
    this.#publisher = connections.publisher
    this.#subscriber = connections.subscriber
    this.#ownsPublisher = connections.ownsPublisher
    this.#address = connections.address
    this.#sharded = connections.sharded
    this.#pkOf = options.pkOf
    this.#interest = new ChannelInterest({
      subscribe: (channel) => this.#listen([channel]),
      unsubscribe: (channel) => {
        this.#inbound.forget(channel)
        // a failed UNSUBSCRIBE only means hearing a channel nobody here follows, until the next reconnect
        const done = this.#sharded ? this.#subscriber.sunsubscribe(channel) : this.#subscriber.unsubscribe(channel)
        done.catch(() => {})
      }
    })
    this.#subscriber.on(this.#events.message, this.#onMessage)
    this.#subscriber.on(this.#events.lost, this.#onSubscriberClose)
    this.#subscriber.on(this.#events.back, this.#onSubscriberReady)
    this.#subscriber.on('error', this.#onConnectionError)
    this.#publisher.on('ready', this.#onPublisherReady)
    // an instance given to us reports its own errors; ours must not print "Unhandled error event"
    if (this.#ownsPublisher) this.#publisher.on('error', this.#onConnectionError)
  }

  /** The subscriber's events: a message, a subscription maybe lost, subscriptions restored. */
  get #events (): { message: string, lost: string, back: string } {
    return this.#sharded
      ? { message: 'smessage', lost: '-node', back: 'subscribersReady' }
      : { message: 'message', lost: 'close', back: 'ready' }
  }

  /** SUBSCRIBE, or on a cluster one SSUBSCRIBE per channel (ioredis refuses channels of different slots in one). */
  async #listen (channels: string[]): Promise<unknown> {
    if (!this.#sharded) return await this.#subscriber.subscribe(...channels)
    return await Promise.all(channels.map(async (channel) => await this.#subscriber.ssubscribe(channel)))
  }

  channelOf (model: string): string {
    return `${this.#prefix}:${model}`
  }

  /** Publishes that never reached Redis (each made its receivers resync). */
  get droppedPublishes (): number {
    return this.#outbound.droppedCount
  }

  async publish (event: LocalChangeEvent): Promise<void> {
    if (this.#closed) return
    const channel = this.channelOf(event.model)
    if (this.#interest.modelOf(channel) !== undefined) this.#listener.event(event)
    let payload: string
    try {
      payload = this.#outbound.encode(this.nodeId, channel, event)
    } catch (err) {
      // rows JSON cannot carry (a BigInt): other nodes re-check the model's whole views instead
      this.#log.warn({ err, model: event.model }, 'fastify-rest-live: a change could not be serialized; publishing it without its rows')
      payload = this.#outbound.encode(this.nodeId, channel, { model: event.model, op: event.op, rows: null })
    }
    await this.#send(channel, payload)
  }

  async follow (model: string): Promise<void> {
    await this.#interest.follow(this.channelOf(model), model)
  }

  unfollow (model: string): void {
    this.#interest.unfollow(this.channelOf(model))
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#publisher.off('ready', this.#onPublisherReady)
    this.#publisher.off('error', this.#onConnectionError)
    this.#subscriber.off(this.#events.lost, this.#onSubscriberClose)
    this.#subscriber.off(this.#events.back, this.#onSubscriberReady)
    await Promise.all([
      closeConnection(this.#subscriber),
      this.#ownsPublisher ? closeConnection(this.#publisher) : undefined
    ])
    this.#subscriber.off(this.#events.message, this.#onMessage)
    this.#subscriber.off('error', this.#onConnectionError)
  }

  async #send (channel: string, payload: string): Promise<void> {
    try {
      await (this.#sharded ? this.#publisher.spublish(channel, payload) : this.#publisher.publish(channel, payload))
    } catch (err) {
      this.#outbound.dropped(channel)
      if (!this.#publishFailing) {
        this.#publishFailing = true
        this.#log.error({ err, channel, redis: this.#address }, 'fastify-rest-live: publishing to Redis failed; writes go on, and other nodes will resync once Redis is back')
      }
    }
  }

  readonly #onMessage = (channel: string, raw: string): void => {
    const model = this.#interest.modelOf(channel)
    // a message still in flight when this node unsubscribed
    if (model === undefined) return
    const message = decodeMessage(raw)
    if (message.kind === 'foreign') {
      this.#warn('foreign', channel, { channel }, 'fastify-rest-live: ignored a message that is not a fastify-rest-live event (is another application using this channelPrefix?)')
      return
    }
    const { o: origin, s } = message.kind === 'invalid' ? message : message.envelope
    if (origin === this.nodeId) return
    const verdict = this.#inbound.check(channel, origin, s)
    if (verdict === 'duplicate') return
    const event = message.kind === 'envelope' ? message.envelope.e : undefined
    const problem = message.kind === 'invalid' ? message.reason : event === undefined ? undefined : this.#problemOf(model, event)
    if (problem !== undefined) {
      // it may stand for a change that really happened: resync rather than guess
      this.#warn('invalid', channel, { model, origin, reason: problem }, 'fastify-rest-live: ignored an invalid event; resyncing (a node of another version, or a forged message on this channel?)')
      this.#listener.gap([model])
      return
    }
    if (verdict === 'gap' || (message.kind === 'envelope' && message.envelope.d === 1)) {
      this.#log.warn({ model, origin, reason: verdict === 'gap' ? 'serial gap' : 'publishes dropped at origin' }, 'fastify-rest-live: events may have been missed; resyncing')
      this.#listener.gap([model])
      return
    }
    if (event === undefined) return
    try {
      this.#listener.event(event)
    } catch (err) {
      // thrown into ioredis's data handler this would be an uncaught exception: resync instead
      this.#warn('failed', channel, { err, model }, 'fastify-rest-live: handling an event failed; resyncing')
      this.#listener.gap([model])
    }
  }

  /** Why a well-formed event cannot be applied to `model`, or undefined when it can. */
  #problemOf (model: string, event: ChangeEvent): string | undefined {
    if (event.model !== model) return `an event of model ${JSON.stringify(event.model)} on the channel of ${JSON.stringify(model)}`
    const pk = this.#pkOf?.(model)
    if (event.rows === null || pk === undefined) return undefined
    const bad = event.rows.findIndex((row) => !isKey(row[pk]))
    return bad === -1 ? undefined : `rows[${bad}] has no usable primary key ${JSON.stringify(pk)}`
  }

  /** Logs a warning about a channel at most once per WARN_INTERVAL_MS and kind: a flood of bad messages must not flood the log. */
  #warn (kind: string, channel: string, details: object, message: string): void {
    const key = `${kind} ${channel}`
    const now = Date.now()
    const last = this.#warned.get(key)
    if (last !== undefined && now - last < WARN_INTERVAL_MS) return
    this.#warned.set(key, now)
    this.#log.warn(details, message)
  }

  readonly #onSubscriberClose = (): void => {
    this.#inbound.clear()
    if (!this.#listening) return
    this.#listening = false
    this.#log.warn({ redis: this.#address }, 'fastify-rest-live: lost the Redis subscriber connection; subscribers will be resynced when it is back')
  }

  readonly #onSubscriberReady = (): void => {
    void this.#resubscribe()
  }

  /** After a reconnect: listen again to every followed channel, then resync their views. */
  async #resubscribe (): Promise<void> {
    // a cluster's subscribers can be replaced without this bus hearing of a close first
    if (this.#sharded) this.#inbound.clear()
    const channels = this.#interest.channels()
    try {
      if (channels.length > 0) await this.#listen(channels)
    } catch (err) {
      // dropped again before it was done (the next 'ready' tries again), or refused (an ACL change)
      this.#log.error({ err, redis: this.#address, channels }, 'fastify-rest-live: re-subscribing after a Redis reconnect failed; this node hears no changes until its next reconnect')
      return
    }
    this.#listening = true
    const models = this.#interest.models()
    this.#log.info({ redis: this.#address, models }, 'fastify-rest-live: Redis subscriber connection is back; resyncing')
    this.#listener.gap(models)
  }

  readonly #onPublisherReady = (): void => {
    // after ioredis has sent its offline queue (it does so right after emitting 'ready')
    queueMicrotask(() => { this.#announceDrops() })
  }

  /** Tells receivers of every channel that lost publishes to resync, and says so once. */
  #announceDrops (): void {
    const channels = this.#outbound.pendingDrops()
    if (this.#publishFailing) {
      this.#publishFailing = false
      this.#log.warn({ redis: this.#address, dropped: this.#outbound.droppedCount, channels }, 'fastify-rest-live: Redis is back for publishing; nodes that missed events are told to resync')
    }
    for (const channel of channels) void this.#send(channel, this.#outbound.encode(this.nodeId, channel))
  }

  readonly #onConnectionError = (err: Error): void => {
    // ioredis reports every failed reconnect attempt; the loss itself is logged once, on close
    this.#log.debug({ err, redis: this.#address }, 'fastify-rest-live: Redis connection error')
  }
}

/** A primary-key value as JSON can carry one: a string or a finite number. */
function isKey (value: unknown): boolean {
  return typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value))
}
