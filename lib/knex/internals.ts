/**
 * The fence: every use of Knex's private (underscore-prefixed or undocumented)
 * internals, and nothing else. The rest of lib/ sees Knex only through its public
 * API and the typed views below (test/knex-fence.test.ts fails if `._x` appears
 * elsewhere).
 *
 * Knex has no hooks for "which table does this builder write" nor "run this
 * statement and tell me its rows", so the capture and the evaluator read the
 * builder's record of itself and wrap the client. Each access says what it is,
 * why it is needed and the Knex versions it was checked on: 3.0.1 and 3.3.0
 * (the oldest and newest 3.x; CI runs the capture and evaluator tests on both,
 * see scripts/knex-versions.js). A new Knex release that moves one of these
 * breaks here, in one file.
 */
import type { Knex } from 'knex'

/** One entry of a builder's statement list (`_statements`): a where clause, a column list, an order… */
export interface BuilderStatement {
  /** 'where', 'columns', 'order', 'join', 'group'… */
  grouping?: string
  /** For where clauses: 'whereBasic', 'whereIn', 'whereNull', 'whereBetween', 'whereWrapped'… */
  type?: string
  column?: unknown
  operator?: unknown
  value?: unknown
  not?: boolean
  /** 'and' | 'or': how the clause joins the one before it. */
  bool?: string
  asColumn?: boolean
  distinct?: unknown
}

/** A builder's single-valued parts (`_single`); the keys lib/ reads are named, the rest (limit, offset, lock…) are there too. */
export interface BuilderSingle {
  /** `db('tasks')`, `from({ t: 'tasks' })`: a string, an alias object, a subquery or a raw. */
  table?: unknown
  /** `withSchema('audit')`. */
  schema?: unknown
  /** `from(table, { only })` (PostgreSQL ONLY); false when not asked for. */
  only?: unknown
  /** `update({ … })`: the columns set. */
  update?: unknown
  /** `increment` / `decrement`: the columns set. */
  counter?: unknown
  /** `onConflict(columns)`. */
  onConflict?: unknown
  /** `onConflict(…).merge(…)`. */
  merge?: unknown
  readonly [key: string]: unknown
}

/** What a query builder records about itself, read-only. */
export interface BuilderParts {
  /** 'select' (the default), 'insert', 'update', 'del', 'truncate', 'first', 'pluck'… */
  method: string | undefined
  single: Readonly<BuilderSingle>
  statements: readonly BuilderStatement[]
}

/**
 * The builder fields read here (knex/lib/query/querybuilder.js, 3.0.1 and 3.3.0):
 * - `_method`: what the builder will run, set by select/insert/update/del/truncate/first…;
 * - `_single`: table, schema and the other one-value parts (see BuilderSingle);
 * - `_statements`: the list of clauses, in call order;
 * - `client`: the Knex client that made it (typed, but not documented).
 */
interface BuilderInternals {
  _method?: string
  _single: BuilderSingle
  _statements: BuilderStatement[]
  client: ClientInternals
}

/** The client fields and methods read or wrapped here (knex/lib/client.js and dialects/, 3.0.1 and 3.3.0). */
interface ClientInternals {
  /** 'postgresql', 'sqlite3', 'mysql'…: set on each dialect's prototype (typed, not documented). */
  dialect?: string
  /** PostgreSQL only: the `searchPath` option as given, set by the pg dialect's constructor when truthy. */
  searchPath?: unknown
  /** Builds a query builder on this client, as `knex.queryBuilder()` does. */
  queryBuilder: () => BuilderInternals
  /** Builds a raw query on this client (what `knex.raw` calls). */
  raw: (sql: string, bindings: readonly unknown[]) => PromiseLike<unknown>
  /** Makes the Runner that executes a builder: called once per builder run, with the builder. */
  runner: (this: ClientInternals, builder: BuilderInternals) => RunnerInternals
  /** Every statement on a connection passes here: adds Knex's events and error text, then calls `_query`. */
  query: (this: ClientInternals, connection: object, query: QueryObject | string) => Promise<QueryObject>
  /** The dialect's driver call: runs `sql` with `bindings`, sets `response` (and `context` for SQLite). */
  _query: (this: ClientInternals, connection: object, query: QueryObject) => Promise<QueryObject>
}

/** `Runner.query(obj)`: compiles nothing, hands each compiled query object to `client.query` (knex/lib/execution/runner.js). */
interface RunnerInternals {
  query: (query: QueryObject) => Promise<unknown>
}

/**
 * Knex's query object: what `toSQL()` compiles, handed by the runner to
 * `client.query`, and returned by the dialect's `_query` with the driver's
 * answer in `response`. The same object travels the whole way, which is what
 * lets a tag set at the runner be read at the client.
 */
export interface QueryObject {
  sql: string
  bindings?: unknown[]
  /** 'insert', 'update', 'del', 'select', 'raw'… */
  method?: string
  /** The compiled `returning(…)`, when the builder asked for one. */
  returning?: unknown
  /** The driver's answer: a pg Result, or better-sqlite3's row array / run result. */
  response?: unknown
  /** better-sqlite3 only, for a statement that returns no rows: what Knex's insert/update/del answers are built from. */
  context?: { lastID?: unknown, changes?: number }
}

const builderOf = (builder: Knex.QueryBuilder): BuilderInternals => builder as unknown as BuilderInternals

/** Whether a value is a Knex query builder (not a raw query, a promise or rows): it has a statement list and single parts. */
export function isQueryBuilder (value: unknown): value is Knex.QueryBuilder {
  return value !== null && typeof value === 'object' &&
    typeof (value as { toSQL?: unknown }).toSQL === 'function' && '_statements' in value && '_single' in value
}

/** What the builder will run, on which table, with which clauses: its own record, not a copy (do not modify). */
export function partsOf (builder: Knex.QueryBuilder): BuilderParts {
  const internals = builderOf(builder)
  return { method: internals._method, single: internals._single, statements: internals._statements }
}

/**
 * The clauses a `where(callback)` group stands for. Knex files a function as a
 * `whereWrapped` statement and, each time it compiles, calls it on a fresh
 * builder of the same client (formatterUtils.js `compileCallback`); so does this.
 */
export function statementsOfGroup (builder: Knex.QueryBuilder, callback: unknown): readonly BuilderStatement[] {
  const inner = builderOf(builder).client.queryBuilder()
  ;(callback as (this: unknown, builder: unknown) => void).call(inner, inner)
  return inner._statements
}

/** The client behind a Knex instance or a builder (`knex.client`, `builder.client`): an object to key caches by. */
export function clientOf (source: Knex | Knex.QueryBuilder): object {
  return (source as unknown as { client: object }).client
}

/** The dialect name of a client ('postgresql', 'sqlite3'…), undefined for something that is not one. */
export function dialectName (client: unknown): string | undefined {
  return (client as Partial<ClientInternals>).dialect
}

/** A PostgreSQL client's `searchPath` option (a string, an array, or undefined). */
export function searchPathOf (client: unknown): unknown {
  return (client as Partial<ClientInternals>).searchPath
}

/** Runs a catalogue query on the client a builder was made with (its connection pool, outside any transaction). */
export async function clientRaw (client: object, sql: string, bindings: readonly unknown[]): Promise<unknown> {
  return await (client as ClientInternals).raw(sql, bindings)
}

/** How the interception runs a statement, for the client (or transaction client) that was asked to. */
export interface ClientCall {
  /** Runs the statement as Knex would have: `query` event, driver, error message with the SQL. */
  run: (query: QueryObject | string) => Promise<QueryObject>
  /** Runs a statement on the driver only: no event, no interception (a follow-up the user did not write). */
  direct: (sql: string) => Promise<QueryObject>
}

/** What a wrapped client asks of its owner. */
export interface Interception<Tag> {
  /** A builder is about to run: a tag for the statements it sends, or undefined to leave them untagged. */
  tag: (builder: BuilderParts) => Tag | undefined
  /** Every statement the client (or a transaction client made from it) runs, with its builder's tag. */
  query: (connection: object, query: QueryObject | string, tag: Tag | undefined, call: ClientCall) => Promise<QueryObject>
}

/**
 * Wraps one Knex client's `runner` and `query`, without touching the Knex class
 * or other instances: the client gets a prototype of its own. Knex builds a
 * transaction's client with `Object.create(client.constructor.prototype)`
 * (execution/transaction.js `makeTxClient`, 3.0.1 and 3.3.0) and reads nothing
 * else of `constructor`, so the own prototype's `constructor` is `{ prototype }`
 * and transactions are wrapped too. Returns the function that puts the
 * client's prototype back.
 */
export function interceptClient<Tag> (knex: Knex, interception: Interception<Tag>): () => void {
  const client = clientOf(knex) as ClientInternals
  const original = Object.getPrototypeOf(client) as ClientInternals
  const tags = new WeakMap<QueryObject, Tag>()
  const prototype = Object.create(original) as ClientInternals & { constructor: unknown }
  prototype.constructor = { prototype }

  prototype.runner = function runner (builder) {
    const runner = original.runner.call(this, builder)
    const tag = interception.tag({ method: builder._method, single: builder._single, statements: builder._statements })
    if (tag === undefined) return runner
    // the runner hands each compiled query object of this builder to client.query: remember whose they are
    const query = runner.query
    runner.query = function taggedQuery (compiled) {
      if (typeof compiled === 'object' && compiled !== null) tags.set(compiled, tag)
      return query.call(this, compiled)
    }
    return runner
  }
  prototype.query = function query (connection, compiled) {
    const self = this
    const call: ClientCall = {
      run: async (query) => await original.query.call(self, connection, query),
      direct: async (sql) => await original._query.call(self, connection, { sql, bindings: [] })
    }
    return interception.query(connection, compiled, typeof compiled === 'object' ? tags.get(compiled) : undefined, call)
  }
  Object.setPrototypeOf(client, prototype)
  return () => { Object.setPrototypeOf(client, original) }
}

/** The rows of a statement that returned rows: better-sqlite3 answers an array, pg a Result with `rows`. */
export function responseRows<Row> (result: QueryObject): Row[] {
  const response = result.response
  return Array.isArray(response) ? response as Row[] : (response as { rows: Row[] }).rows
}

/** How many rows a write changed, when the driver says (pg's `rowCount`, better-sqlite3's `changes`). */
export function changedCount (result: QueryObject): number | undefined {
  const response = result.response as { rowCount?: number | null, changes?: number } | unknown[]
  return Array.isArray(response) ? response.length : response.rowCount ?? response.changes
}

/** The command tag of a pg answer (`COMMIT`, `ROLLBACK`); undefined for SQLite. */
export function commandOf (result: QueryObject): unknown {
  return (result.response as { command?: unknown } | undefined)?.command
}

/** Replaces the rows of a write's answer (pg's `rows`, better-sqlite3's row array) with the ones its caller asked for. */
export function withReturnedRows (result: QueryObject, rows: unknown[]): void {
  const response = result.response
  if (Array.isArray(response)) result.response = rows
  else (response as { rows: unknown[] }).rows = rows
}

/**
 * Puts a write's answer back into the shape Knex's response processing
 * expects when no RETURNING was asked for, after one was added: pg sends no
 * rows (its rowCount is the same either way); better-sqlite3 `run()`s such a
 * statement and Knex builds the answer from `context` (lastID for an insert,
 * changes for update and delete).
 */
export function withoutReturnedRows (result: QueryObject, dialect: 'postgresql' | 'sqlite', changes: number, lastID: unknown): void {
  if (dialect === 'postgresql') {
    (result.response as { rows: unknown[] }).rows = []
    return
  }
  result.response = { changes, lastInsertRowid: lastID }
  result.context = { lastID, changes }
}
