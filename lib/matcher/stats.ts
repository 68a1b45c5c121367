/**
 * Process-wide counters of the matcher, for tests and benchmarks (not part of
 * the public stats): how many view reads a change caused and how each changed
 * row was decided.
 */
export const matcherStats = {
  /** View reads caused by changes (one per view visited per pass). */
  viewsRead: 0,
  /** Changed rows decided in memory. */
  rowsEvaluated: 0,
  /** Changed rows that had to be checked against the database. */
  rowsFromDatabase: 0,
  /** Catalogue queries made to learn a table's columns (once per table and client). */
  schemaQueries: 0
}

export function resetMatcherStats (): void {
  matcherStats.viewsRead = 0
  matcherStats.rowsEvaluated = 0
  matcherStats.rowsFromDatabase = 0
  matcherStats.schemaQueries = 0
}
