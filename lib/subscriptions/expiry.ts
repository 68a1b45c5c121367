/**
 * Credential lifetimes: what the app's `expiresAt` hook answers for an
 * authorised request, checked and turned into a time. Expired credentials
 * authorise nothing, so a time already past refuses the subscription (401).
 */
import type { FastifyRequest } from 'fastify'
import { ExpiredError, InvalidExpiryError } from '../errors.js'
import type { ExpiresAt } from '../types.js'

/** setTimeout's longest wait (about 24.8 days); a longer one would fire at once. */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1

/** When the credentials `request` was authorised with expire (ms since the epoch); undefined: never. */
export async function expiryOf (hook: ExpiresAt | undefined, request: FastifyRequest, route: string): Promise<number | undefined> {
  if (hook === undefined) return undefined
  const value: unknown = await hook(request)
  if (value === undefined || value === null) return undefined
  // through Date, so a number outside the range a Date can hold is refused like NaN
  const time = value instanceof Date ? value.getTime() : typeof value === 'number' ? new Date(value).getTime() : NaN
  if (Number.isNaN(time)) throw new InvalidExpiryError(route, describe(value))
  if (time <= Date.now()) throw new ExpiredError(new Date(time).toISOString())
  return time
}

function describe (value: unknown): string {
  if (value instanceof Date) return 'an invalid Date'
  if (typeof value === 'number') return String(value)
  if (typeof value === 'string') return JSON.stringify(value)
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`
}
