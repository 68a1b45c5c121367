/**
 * Permissions are the routes' own hooks. These are ready ones, in the spirit of
 * channels-api's permission classes (`AllowAny`, `IsAuthenticated`,
 * `BasePermission.has_permission(user, action, pk)`), usable as a route's
 * `onRequest` or `preHandler` for HTTP and socket alike.
 *
 * A request run for a channels-api frame carries its action, stream and pk in
 * `x-rest-live-*` headers, sealed with a secret of the plugin's registration
 * so that an HTTP client cannot pose as another action: `actionOf` / `pkOf`
 * read them only when the seal matches, and otherwise derive them from the
 * HTTP request.
 */
import { randomBytes } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { ForbiddenError, UnauthorizedError } from '../errors.js'
import type { Pk } from './frames.js'

export const ACTION_HEADER = 'x-rest-live-action'
export const STREAM_HEADER = 'x-rest-live-stream'
export const PK_HEADER = 'x-rest-live-pk'
export const SEAL_HEADER = 'x-rest-live-seal'

/** Where a registration keeps its seal's secret: a decoration, so a request of any route below it finds it (request.server). */
const kSeal = Symbol('fastify-rest-live seal')

/** The message channels-api answered a refused action with. */
export const PERMISSION_DENIED = 'Permission Denied'

/** One registration's seal: the headers it sets are believed only with its secret. */
export class Seal {
  readonly #secret = randomBytes(24).toString('base64url')

  /** Lets actionOf / pkOf / streamOf check requests of `app` (and of its child contexts) against this seal. */
  install (app: FastifyInstance): void {
    app.decorate(kSeal, this.#secret)
  }

  /** The headers that tell a route's hooks which channels-api action they run for. */
  headers (stream: string, action: string, pk: Pk | undefined): Record<string, string> {
    const headers: Record<string, string> = { [ACTION_HEADER]: action, [STREAM_HEADER]: stream, [SEAL_HEADER]: this.#secret }
    if (pk !== undefined) headers[PK_HEADER] = String(pk)
    return headers
  }
}

function sealed (request: FastifyRequest): boolean {
  const secret = (request.server as unknown as Record<symbol, unknown>)[kSeal]
  // without the plugin there is no secret, and nothing is sealed
  return typeof secret === 'string' && request.headers[SEAL_HEADER] === secret
}

const httpActions: Record<string, string> = { POST: 'create', PUT: 'update', PATCH: 'update', DELETE: 'delete' }

function hasParams (request: FastifyRequest): boolean {
  return Object.keys(request.params as object).length > 0
}

/**
 * The channels-api action a request runs: the frame's `action` over the socket
 * (`list`, `create`, `retrieve`, `update`, `delete`, `subscribe` or a custom
 * action's name); for a plain HTTP request, the one its method stands for
 * (GET → `retrieve` with path parameters, else `list`; POST → `create`;
 * PUT/PATCH → `update`; DELETE → `delete`).
 */
export function actionOf (request: FastifyRequest): string {
  if (sealed(request)) return request.headers[ACTION_HEADER] as string
  if (request.method === 'GET' || request.method === 'HEAD') return hasParams(request) ? 'retrieve' : 'list'
  return httpActions[request.method] ?? request.method.toLowerCase()
}

/** The channels-api stream a request runs for, or undefined for a plain HTTP request. */
export function streamOf (request: FastifyRequest): string | undefined {
  return sealed(request) ? request.headers[STREAM_HEADER] as string : undefined
}

/**
 * The pk a request is about, as a string: the frame's pk over the socket; for a
 * plain HTTP request, the last path parameter. Undefined when there is none.
 */
export function pkOf (request: FastifyRequest): string | undefined {
  if (sealed(request)) return request.headers[PK_HEADER] as string | undefined
  const values = Object.values(request.params as Record<string, unknown>)
  return values.length === 0 ? undefined : String(values[values.length - 1])
}

/** A route hook; use it as `onRequest` or `preHandler`. */
export type PermissionHook = (request: FastifyRequest, reply: FastifyReply) => Promise<void>

/** Finds the user a request is made by; `undefined` or `null` means anonymous. */
export type UserOf = (request: FastifyRequest) => unknown

/** channels-api's `has_permission(user, action, pk)`, with the request for anything else. */
export type PermissionCheck = (user: unknown, action: string, pk: string | undefined, request: FastifyRequest) => boolean | Promise<boolean>

export interface PermissionOptions {
  /** Where the user is (default `request.user`, as @fastify/jwt, @fastify/passport and most auth plugins set it). */
  userOf?: UserOf
}

/** Reads `request.user`. */
export const defaultUserOf: UserOf = (request) => (request as FastifyRequest & { user?: unknown }).user

/** Whether a user is there (neither undefined nor null): `permission(isUser, { userOf })` is IsAuthenticated with your own user source. */
export function isUser (user: unknown): boolean {
  return user !== undefined && user !== null
}

/**
 * A hook from a permission check. A refusal answers 401 `Permission Denied`
 * when there is no user, 403 when there is one (REST's distinction; channels-api
 * answered 401 for both).
 */
export function permission (check: PermissionCheck, options: PermissionOptions = {}): PermissionHook {
  if (typeof check !== 'function') throw new TypeError('fastify-rest-live: permission(check) needs a function (user, action, pk, request) => boolean')
  const userOf = options.userOf ?? defaultUserOf
  return async (request) => {
    const user = userOf(request)
    if (await check(user, actionOf(request), pkOf(request), request)) return
    throw isUser(user) ? new ForbiddenError(PERMISSION_DENIED) : new UnauthorizedError(PERMISSION_DENIED)
  }
}

/** channels-api's `AllowAny`: lets every request through. */
export const allowAny: PermissionHook = async () => {}

/** channels-api's `IsAuthenticated`: 401 unless `request.user` is set. For another user source: `permission(isUser, { userOf })`. */
export const isAuthenticated: PermissionHook = permission(isUser)
