// sessions.js: a stand-in for your session store. Two users with one fixed
// session each, and no passwords: use your real store and login.
const users = [{ id: 1, name: 'alice' }, { id: 2, name: 'bob' }]

export const sessions = {
  /** The session id for a user who just logged in, or null for an unknown name. */
  sidFor: (name) => users.some((user) => user.name === name) ? `session-${name}` : null,
  /** The user a session id belongs to, or null. */
  userFor: async (sid) => users.find((user) => `session-${user.name}` === sid) ?? null
}
