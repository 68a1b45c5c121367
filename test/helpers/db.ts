/**
 * Databases for tests: an in-memory SQLite, or the machine's PostgreSQL
 * (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test) with tables
 * named per test so files can run in parallel.
 */
import knex, { type Knex } from 'knex'

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
