// db.js: the one Knex instance the app writes through (and the plugin watches).
import knex from 'knex'

// PostgreSQL when DATABASE_URL is set, otherwise a SQLite file (npm install better-sqlite3)
export const db = process.env.DATABASE_URL === undefined
  ? knex({ client: 'better-sqlite3', connection: { filename: process.env.SQLITE_FILE ?? 'tasks.db' }, useNullAsDefault: true })
  : knex({ client: 'pg', connection: process.env.DATABASE_URL })
