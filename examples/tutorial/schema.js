// schema.js: the two tables, created when missing (a real app would use migrations).
// The schema builder writes the right DDL for each database: increments() is
// `serial primary key` on PostgreSQL and `integer primary key` on SQLite.
export async function createTables (db) {
  if (!await db.schema.hasTable('tasks')) {
    await db.schema.createTable('tasks', (table) => {
      table.increments('id')
      table.integer('owner_id').notNullable()
      table.string('title').notNullable()
      table.boolean('done').notNullable().defaultTo(false)
      table.text('internal_note')            // never sent to clients: the response schemas leave it out
    })
  }
  if (!await db.schema.hasTable('audit')) {
    await db.schema.createTable('audit', (table) => {
      table.increments('id')
      table.integer('task_id').notNullable()
      table.integer('user_id').notNullable()
      table.timestamp('at').notNullable().defaultTo(db.fn.now())
    })
  }
}
