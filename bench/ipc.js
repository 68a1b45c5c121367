/**
 * The command loop shared by the bench's child processes (servers and load
 * generator): each message from the parent is handled and answered with its
 * `seq`, errors included; the child exits when the parent goes away.
 */
export function serveCommands (handle) {
  process.on('message', (message) => {
    handle(message).then(
      (reply) => process.send({ seq: message.seq, ...reply }),
      (err) => process.send({ seq: message.seq, error: String(err?.stack ?? err) })
    )
  })
  process.on('disconnect', () => process.exit(0))
}
