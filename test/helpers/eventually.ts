/**
 * Waits for state that has no event of its own to wait on: Redis's view of
 * its clients and channels, a server's count of open sockets. Checks between
 * turns of the event loop (setImmediate, so fake timers do not stop it), and
 * fails with `what` after `timeoutMs` of real time: a bound on failure, never a
 * pause a passing test depends on.
 */
export async function eventually (check: () => Promise<boolean> | boolean, what = 'the condition', timeoutMs = 10_000): Promise<void> {
  const start = performance.now()
  while (!(await check())) {
    if (performance.now() - start > timeoutMs) throw new Error(`${what} did not hold within ${timeoutMs} ms`)
    await new Promise((resolve) => setImmediate(resolve))
  }
}
