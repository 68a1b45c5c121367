/**
 * Databases for tests: an in-memory SQLite, or the machine's PostgreSQL
 * (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test) with tables
 * named per test so files can run in parallel.
 *
 * KNEX_PACKAGE picks the Knex module every test database is made with:
 * `knex` (the newest, by default) or `knex-oldest` (npm:knex@3.0.1, the oldest
 * release the peer range allows). scripts/knex-versions.js runs the tests of
 * the Knex fence (lib/knex/internals.ts) with the oldest.
 */
import { createRequire } from 'node:module'
import type { Knex } from 'knex'

export const KNEX_PACKAGE = process.env.KNEX_PACKAGE ?? 'knex'
/** The version of the Knex the tests run on, for their output. */
export const KNEX_VERSION = (createRequire(import.meta.url)(`${KNEX_PACKAGE}/package.json`) as { version: string }).version

/** The Knex factory of the chosen package (the same API across 3.x: typed by the newest). */
export const knex = ((await import(KNEX_PACKAGE)) as { default: typeof import('knex').knex }).default

export type Dialect = 'sqlite' | 'postgres'

export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

export function sqlite (): Knex {
  return knex({ client: 'better-sqlite3', connection: { filename: ':memory:' }, useNullAsDefault: true })
}

export function postgres (): Knex {
  return knex({ client: 'pg', connection: DATABASE_URL, pool: { min: 0, max: 5 } })
}

export function connect (dialect: Dialect): Knex {
  return dialect === 'sqlite' ? sqlite() : postgres()
}

/** Whether PostgreSQL answers; in CI a missing server is a failure, not a skip. */
export async function postgresAvailable (): Promise<boolean> {
  const db = postgres()
  try {
    await db.raw('select 1')
    return true
  } catch (err) {
    if (process.env.CI) throw err
    return false
  } finally {
    await db.destroy()
  }
}

let counter = 0
/** A table name unique to this process and call. */
export function uniqueName (base: string): string {
  counter++
  return `${base}_${process.pid}_${counter}`
}

/** Creates a tasks table: id, title, owner_id, done, secret. */
export async function createTasksTable (db: Knex, name: string): Promise<void> {
  await db.schema.dropTableIfExists(name)
  await db.schema.createTable(name, (table) => {
    table.increments('id').primary()
    table.string('title').notNullable()
    table.integer('owner_id').notNullable()
    table.boolean('done').notNullable().defaultTo(false)
    table.string('secret').notNullable().defaultTo('hunter2')
  })
}
