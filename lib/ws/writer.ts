/**
 * The one writer of a socket: every frame the server sends on it, of either
 * protocol, goes through here, so one place owns backpressure:
 * - a broadcast is refused (false) while more than maxBufferedBytes are queued:
 *   its subscription stops hearing changes and is resynced after the drain,
 *   instead of the server buffering without bound or losing changes silently;
 * - an answer to the client's own frame is never dropped (the connection stops
 *   reading the socket while it is congested instead).
 *
 * The drain is noticed from the socket's own events, never by polling: every
 * frame is sent with a callback, which ws calls once the frame is written out
 * to the network. While congested, each one checks the queue again: drained
 * below half, or every frame sent written out (what is left is ws's own, a
 * pong, which no callback of ours would ever report).
 */
import type { WebSocket } from 'ws'

/** Just what the writer uses of a ws socket. */
export type WritableSocket = Pick<WebSocket, 'send' | 'bufferedAmount'>

export interface WriterEvents {
  /** More than maxBufferedBytes are queued: stop reading the socket. */
  congested (): void
  /** The queue fell to half of maxBufferedBytes after congestion: read again, resync what went stale. */
  drained (): void
}

export class SocketWriter {
  readonly #socket: WritableSocket
  readonly #maxBufferedBytes: number
  readonly #events: WriterEvents
  #congested = false
  #closed = false
  /** Frames sent whose send callback has not come yet. */
  #unwritten = 0

  constructor (socket: WritableSocket, maxBufferedBytes: number, events: WriterEvents) {
    this.#socket = socket
    this.#maxBufferedBytes = maxBufferedBytes
    this.#events = events
  }

  /** More than maxBufferedBytes were queued, and the socket has not drained below half of it since. */
  get congested (): boolean {
    return this.#congested
  }

  /** Writes an answer to a client frame: never dropped for congestion. */
  reply (frame: string): void {
    this.send(frame, false)
  }

  /** Writes a frame. False when the socket is congested: the caller should stop broadcasting to it. */
  send (frame: string, droppable = true): boolean {
    if (this.#closed) return true
    if (droppable && this.#socket.bufferedAmount > this.#maxBufferedBytes) {
      this.#congest()
      return false
    }
    this.#unwritten++
    this.#socket.send(frame, this.#written)
    if (this.#socket.bufferedAmount > this.#maxBufferedBytes) this.#congest()
    return true
  }

  /** The socket closed: nothing more is written, and a late write callback changes nothing. */
  close (): void {
    this.#closed = true
  }

  #congest (): void {
    if (this.#congested) return
    this.#congested = true
    this.#events.congested()
  }

  /** ws's send callback: a frame left the queue (or the socket failed, which closes it). */
  readonly #written = (): void => {
    this.#unwritten--
    if (!this.#congested || this.#closed) return
    if (this.#unwritten > 0 && this.#socket.bufferedAmount > this.#maxBufferedBytes / 2) return
    this.#congested = false
    this.#events.drained()
  }
}
