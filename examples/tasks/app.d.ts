// Types for app.js, so TypeScript tests can build the demo.
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import type { Knex } from 'knex'

export interface DemoOptions {
  /** The fastify-rest-live plugin (the built package, or lib/ in tests). */
  restLive: FastifyPluginAsync<{ knex: Knex, inspector?: boolean }>
  /** The browser client's JavaScript, served at /client.js. */
  clientSource: string
  /** Fastify's logger option. */
  logger?: boolean | object
}

/** Builds the demo app (ready, not listening); closing it destroys its database. */
export function buildDemo (options: DemoOptions): Promise<FastifyInstance>
