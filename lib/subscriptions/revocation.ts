/**
 * Revocation: a subscription's checks are re-run after it started, so access
 * revoked (a ban, a logout, a role change, credentials that expired) ends the
 * subscriptions it had granted instead of letting them stream until the
 * socket closes.
 *
 * Three triggers share one check: `reauthorize(match)` (called by the app), a
 * periodic run of it (`reauthorizeEvery`) and each subscription's expiry
 * (`expiresAt`). A check runs the subscription's GET through the authorizer
 * exactly as subscribing did (the route's hooks and validation, the same URL,
 * the socket's requester). Refused: the manager releases the subscription
 * first, so nothing can be sent for it afterwards, then its owner sends the
 * error. Accepted with another view (the user's queryset changed): it moves
 * there and is resynced. Accepted as it was: it goes on, with its new expiry.
 */
import type { FastifyBaseLogger } from 'fastify'
import { InvalidMatchError, toFrameFailure } from '../errors.js'
import type { RealtimeSubscriptionInfo, ReauthorizeSummary } from '../types.js'
import type { Authorization, Requester, SubscriptionAuthorizer } from './authorizer.js'
import { MAX_TIMEOUT_MS } from './expiry.js'
import type { SubscriptionManager, SubscriptionWatcher } from './manager.js'
import type { Subscription } from './subscription.js'
import type { ViewSource } from './view.js'

/** How a subscription was authorised: what it takes to re-run its checks and to end it. */
export interface Grant {
  /** The URL subscribed. */
  readonly url: string
  /** Who its checks run as. */
  readonly requester: Requester
  /** What `match` sees of it. */
  readonly info: RealtimeSubscriptionInfo
  /** The revoker's generation when its first check began (see Revoker.started). */
  readonly generation: number
  /** When the credentials of its first check expire (ms since the epoch). */
  readonly expiresAt: number | undefined
  /** The owner's part of ending it, once the manager released it: forget it and tell the client why. */
  readonly end: (err: unknown) => void
}

export interface GrantRequest {
  id: string | number
  protocol: RealtimeSubscriptionInfo['protocol']
  url: string
  /** The socket's requester, as `match` sees it. */
  socket: Requester
  /** Who the checks run as (the socket's requester, plus channels-api's sealed headers). */
  requester: Requester
  authorization: Authorization
  /** `Revoker.generation` read before the first check began. */
  generation: number
  channels?: { stream: string, action: string, pk: string | number | undefined }
  end: (err: unknown) => void
}

export interface RevokerDeps {
  authorizer: Pick<SubscriptionAuthorizer, 'authorize'>
  manager: Pick<SubscriptionManager, 'unsubscribe' | 'move'>
  log: FastifyBaseLogger
  /** The view an authorization grants. */
  view: (authorization: Authorization) => ViewSource
  /** Milliseconds between periodic runs; undefined: none. */
  every: number | undefined
}

type Outcome = 'kept' | 'moved' | 'ended' | 'gone'

interface Tracked {
  readonly subscription: Subscription
  readonly grant: Grant
  /** Its latest check: the next one starts after it, so answers apply in the order they were asked. */
  checking: Promise<Outcome>
  /** Fires at its expiry. */
  timer: NodeJS.Timeout | undefined
}

/** Checks run at once by one reauthorize(): a periodic run of many must not flood the routes' hooks. */
const CONCURRENCY = 8

export class Revoker implements SubscriptionWatcher {
  readonly #deps: RevokerDeps
  readonly #tracked = new Map<Subscription, Tracked>()
  readonly #checks = new Set<Promise<Outcome>>()
  #generation = 0
  #timer: NodeJS.Timeout | undefined
  #closed = false

  constructor (deps: RevokerDeps) {
    this.#deps = deps
    if (deps.every !== undefined) this.#schedule(deps.every)
  }

  /** Bumped by every run: read it before a subscription's first check, and pass it to grant(). */
  get generation (): number {
    return this.#generation
  }

  grant (request: GrantRequest): Grant {
    const { authorization, socket } = request
    const info: RealtimeSubscriptionInfo = Object.freeze({
      id: request.id,
      protocol: request.protocol,
      model: authorization.route.model,
      route: authorization.route.url,
      url: request.url,
      headers: Object.freeze({ ...socket.headers }),
      remoteAddress: socket.remoteAddress,
      channels: request.channels === undefined ? undefined : Object.freeze({ ...request.channels })
    })
    return { url: request.url, requester: request.requester, info, generation: request.generation, expiresAt: authorization.expiresAt, end: request.end }
  }

  /** SubscriptionWatcher: a subscription exists (its `subscribed` was just sent). */
  started (subscription: Subscription): void {
    const grant = subscription.grant
    if (grant === undefined) return
    const tracked: Tracked = { subscription, grant, checking: Promise.resolve('kept'), timer: undefined }
    this.#tracked.set(subscription, tracked)
    this.#arm(tracked, grant.expiresAt)
    // a run began while its first check ran, and may have revoked what that check saw: check it again
    if (grant.generation !== this.#generation) void this.#enqueue(tracked)
  }

  /** SubscriptionWatcher: the subscription ended. */
  ended (subscription: Subscription): void {
    clearTimeout(this.#tracked.get(subscription)?.timer)
    this.#tracked.delete(subscription)
  }

  async reauthorize (match?: (subscription: RealtimeSubscriptionInfo) => boolean): Promise<ReauthorizeSummary> {
    if (match !== undefined && typeof match !== 'function') throw new InvalidMatchError(typeof match)
    this.#generation++
    const targets = [...this.#tracked.values()].filter((tracked) => match === undefined || match(tracked.grant.info))
    const summary: ReauthorizeSummary = { checked: targets.length, ended: 0, moved: 0 }
    await eachLimited(targets, CONCURRENCY, async (tracked) => {
      const outcome = await this.#enqueue(tracked)
      if (outcome === 'ended') summary.ended++
      if (outcome === 'moved') summary.moved++
    })
    return summary
  }

  /** Resolves when no check is running (app.realtime.settled()). */
  async idle (): Promise<void> {
    while (this.#checks.size > 0) await Promise.all(this.#checks)
  }

  close (): void {
    this.#closed = true
    clearTimeout(this.#timer)
    for (const tracked of this.#tracked.values()) clearTimeout(tracked.timer)
  }

  #enqueue (tracked: Tracked): Promise<Outcome> {
    const check = tracked.checking.then(async () => await this.#check(tracked))
    tracked.checking = check
    this.#checks.add(check)
    void check.then(() => { this.#checks.delete(check) })
    return check
  }

  /** Never rejects: whatever goes wrong ends the subscription (fail closed). */
  async #check (tracked: Tracked): Promise<Outcome> {
    const { subscription, grant } = tracked
    let authorization: Authorization
    try {
      authorization = await this.#deps.authorizer.authorize(grant.url, grant.requester)
    } catch (err) {
      return this.#end(tracked, err)
    }
    if (subscription.closed) return 'gone'
    this.#arm(tracked, authorization.expiresAt)
    if (authorization.key === subscription.view.key) return 'kept'
    try {
      await this.#deps.manager.move(subscription, this.#deps.view(authorization))
    } catch (err) {
      // it follows nothing now, and streaming its old view is what must not happen: end it
      this.#deps.log.error({ err, url: grant.url }, 'fastify-rest-live: a re-authorised subscription could not read its new view')
      return this.#end(tracked, err)
    }
    return 'moved'
  }

  #end (tracked: Tracked, err: unknown): Outcome {
    const { subscription, grant } = tracked
    if (subscription.closed) return 'gone'
    // released first: from here on nothing is sent for it, whatever the model's queue is doing
    this.#deps.manager.unsubscribe(subscription)
    const { statusCode } = toFrameFailure(err)
    this.#deps.log.info({ subscription: grant.info.id, url: grant.url, statusCode }, 'fastify-rest-live: subscription ended, its checks refuse it now')
    grant.end(err)
    return 'ended'
  }

  /** Checks the subscription again when its credentials expire. */
  #arm (tracked: Tracked, expiresAt: number | undefined): void {
    clearTimeout(tracked.timer)
    tracked.timer = undefined
    if (expiresAt === undefined || this.#closed) return
    tracked.timer = setTimeout(() => {
      tracked.timer = undefined
      // setTimeout cannot wait longer than MAX_TIMEOUT_MS: a later expiry is waited for in steps
      if (Date.now() < expiresAt) this.#arm(tracked, expiresAt)
      else void this.#enqueue(tracked)
    }, Math.min(Math.max(expiresAt - Date.now(), 0), MAX_TIMEOUT_MS))
    tracked.timer.unref()
  }

  #schedule (every: number): void {
    this.#timer = setTimeout(() => {
      // the next run is timed from the end of this one: runs never pile up, however long one takes
      void this.reauthorize().then(() => { if (!this.#closed) this.#schedule(every) })
    }, every)
    this.#timer.unref()
  }
}

/** Runs `run` on every item, at most `limit` at once. */
async function eachLimited<T> (items: T[], limit: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    for (let item = items[next++]; item !== undefined; item = items[next++]) await run(item)
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
}
