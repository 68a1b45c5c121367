/**
 * Every error fastify-rest-live raises, in one place, with stable codes.
 *
 * Startup errors (bad options, bad routes) are thrown at registration; protocol
 * errors travel to the client as `error` frames carrying `statusCode`.
 */
import createError from '@fastify/error'

// Registration and route discovery
export const InvalidOptionError = createError<[string, string]>(
  'FST_REST_LIVE_INVALID_OPTION',
  'fastify-rest-live: option %s %s',
  500,
  TypeError
)
export const RealtimeConfigError = createError<[string, string]>(
  'FST_REST_LIVE_INVALID_ROUTE_CONFIG',
  'fastify-rest-live: route %s has an invalid config.realtime: %s',
  500,
  TypeError
)
export const UnserializableRouteError = createError<[string, string]>(
  'FST_REST_LIVE_UNSERIALIZABLE_ROUTE',
  'fastify-rest-live: realtime route GET %s cannot be serialized for subscribers as REST serializes it: %s',
  500,
  TypeError
)
export const RealtimeMethodError = createError<[string, string]>(
  'FST_REST_LIVE_NOT_A_GET_ROUTE',
  'fastify-rest-live: route %s %s has config.realtime, but only GET routes can be realtime',
  500
)
export const EarlyRouteError = createError<[string]>(
  'FST_REST_LIVE_ROUTE_BEFORE_PLUGIN',
  'fastify-rest-live: GET %s has config.realtime but was registered before the plugin, so it cannot be subscribed to; register fastify-rest-live before your routes',
  500
)
export const QuerysetResultError = createError<[string, string]>(
  'FST_REST_LIVE_INVALID_QUERYSET',
  "fastify-rest-live: config.realtime.queryset of GET %s returned %s; it must return a Knex query builder on the route's table, like (request) => db('tasks').where(...)",
  500,
  TypeError
)
export const QuerysetModelError = createError<[string, string, string, string]>(
  'FST_REST_LIVE_MODEL_MISMATCH',
  "fastify-rest-live: GET %s has model '%s' but its queryset reads table '%s', so writes to that table would never reach its subscribers; set model: '%s'",
  500
)
export const QueryFailedError = createError<[string]>(
  'FST_REST_LIVE_QUERY_FAILED',
  'fastify-rest-live: the query of GET %s failed; the server log has the cause',
  500
)
export const RedisConnectError = createError<[string, string]>(
  'FST_REST_LIVE_REDIS_UNREACHABLE',
  'fastify-rest-live: cannot reach Redis at %s: %s',
  500
)

// no arguments: the default argument list is [any?, any?, any?]
export const KnexCapturedElsewhereError = createError<[]>(
  'FST_REST_LIVE_KNEX_CAPTURED_ELSEWHERE',
  'fastify-rest-live: this Knex instance is already captured by another copy of fastify-rest-live (a different version in node_modules); install one copy (npm ls fastify-rest-live, then npm dedupe), or give each copy its own Knex instance',
  500
)

export const InvalidResourceError = createError<[string, string]>(
  'FST_REST_LIVE_INVALID_RESOURCE',
  'fastify-rest-live: app.realtime.resource(): %s %s',
  500,
  TypeError
)

// Decorations
export const NotRealtimeRouteError = createError<[string, string]>(
  'FST_REST_LIVE_NOT_A_REALTIME_ROUTE',
  'fastify-rest-live: app.realtime.%s() was called from %s, which has no config.realtime',
  500
)
export const MissingQuerysetError = createError<[string, string]>(
  'FST_REST_LIVE_NO_QUERYSET',
  'fastify-rest-live: app.realtime.%s() needs config.realtime.queryset on route %s',
  500
)
/**
 * A retrieve found no row: REST's 404 and a subscription's alike, so both name
 * what was searched the same way, "No tasks instance with slug milk": the
 * route's model, its lookup field (`config.realtime.lookup`, the primary key
 * unless set) and the value the request gave for it.
 */
export const InstanceNotFoundError = createError<[model: string, lookupField: string, value: string]>(
  'FST_REST_LIVE_NOT_FOUND',
  'No %s instance with %s %s',
  404
)
export const UnkeyedRowsError = createError<[string, string]>(
  'FST_REST_LIVE_NULL_PRIMARY_KEY',
  "model '%s' has rows whose primary key '%s' is NULL, so they cannot be followed live; the server log says how to fix the table",
  500
)
export const InvalidExpiryError = createError<[string, string]>(
  'FST_REST_LIVE_INVALID_EXPIRY',
  'fastify-rest-live: expiresAt() for %s returned %s; expected a Date, milliseconds since the epoch, or undefined',
  500,
  TypeError
)
export const InvalidMatchError = createError<[string]>(
  'FST_REST_LIVE_INVALID_MATCH',
  'fastify-rest-live: app.realtime.reauthorize(match): match must be a function (subscription) => boolean, got a %s',
  500,
  TypeError
)
export const InvalidPublishError = createError<[string]>(
  'FST_REST_LIVE_INVALID_PUBLISH',
  'fastify-rest-live: app.realtime.publish(): %s',
  500,
  TypeError
)

// Wire protocol: the status is what REST would have answered
export const BadFrameError = createError<[string]>('FST_REST_LIVE_BAD_FRAME', '%s', 400)
export const UnauthorizedError = createError<[string]>('FST_REST_LIVE_UNAUTHORIZED', '%s', 401)
export const ForbiddenError = createError<[string]>('FST_REST_LIVE_FORBIDDEN', '%s', 403)
export const NoRouteError = createError<[string]>('FST_REST_LIVE_NO_ROUTE', '%s', 404)
export const NoSubscriptionError = createError<[string]>(
  'FST_REST_LIVE_NO_SUBSCRIPTION',
  'no subscription with id %s on this socket',
  404
)
export const ExpiredError = createError<[string]>(
  'FST_REST_LIVE_EXPIRED',
  'credentials expired at %s; reconnect with fresh credentials',
  401
)
export const DuplicateSubscriptionError = createError<[string]>(
  'FST_REST_LIVE_DUPLICATE_SUBSCRIPTION',
  'a subscription with id %s is already open on this socket',
  409
)
export const FrameTooLargeError = createError<[number, number]>(
  'FST_REST_LIVE_FRAME_TOO_LARGE',
  'frame of %d bytes exceeds maxPayload (%d bytes)',
  413
)
export const TooManySubscriptionsError = createError<[number]>(
  'FST_REST_LIVE_TOO_MANY_SUBSCRIPTIONS',
  'this socket already has %d subscriptions (maxSubscriptions); unsubscribe first',
  429
)
export const RateLimitedError = createError<[number]>(
  'FST_REST_LIVE_RATE_LIMITED',
  'more than %d frames per second; slow down',
  429
)

/** An error as an `error` frame sees it: an HTTP status and a message. */
export interface FrameFailure {
  statusCode: number
  message: string
}

/** Turns anything thrown while serving a frame into a status and message. */
export function toFrameFailure (err: unknown): FrameFailure {
  if (err instanceof Error) {
    const status = (err as { statusCode?: unknown }).statusCode
    if (typeof status === 'number' && status >= 400 && status < 600) {
      return { statusCode: status, message: err.message }
    }
    return { statusCode: 500, message: 'internal error' }
  }
  return { statusCode: 500, message: 'internal error' }
}
