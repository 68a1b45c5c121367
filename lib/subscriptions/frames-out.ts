/**
 * Server → client frames, built as strings around rows that are already
 * serialized, so a row is serialized once and spliced into every recipient's frame.
 */
import { memberText } from './json-text.js'
import type { SerializedRows } from './view.js'

export type BroadcastAction = 'CREATED' | 'UPDATED' | 'DELETED'

/** The part of a broadcast after the subscription id: the same for every recipient of one change. */
export function broadcastTail (modelJson: string, action: BroadcastAction, instance: string): string {
  return `,"model":${modelJson},"action":"${action}","instance":${instance}}`
}

export function broadcastFrame (idJson: string, tail: string): string {
  return `{"type":"broadcast","id":${idJson}${tail}`
}

/** A view as REST would answer: an array for a list, the instance (or null) for a retrieve. */
export function viewJson (rows: SerializedRows, single: boolean): string {
  if (single) return rows.values().next().value ?? 'null'
  return `[${[...rows.values()].join(',')}]`
}

export function subscribedFrame (idJson: string, data: string | undefined): string {
  return data === undefined ? `{"type":"subscribed","id":${idJson}}` : `{"type":"subscribed","id":${idJson},"data":${data}}`
}

export function resyncFrame (idJson: string, data: string): string {
  return `{"type":"resync","id":${idJson},"data":${data}}`
}

/** What a DELETED broadcast carries: the primary key as the subscriber last saw it, in the same bytes. */
export function deletedInstance (pk: string, lastSeen: string): string {
  // the registry makes sure a route's response schema keeps the primary key
  const value = memberText(lastSeen, pk)
  return value === undefined ? '{}' : `{${JSON.stringify(pk)}:${value}}`
}

/**
 * The text of a frame's `instance` or `data`, as spliced in above: always the
 * last field, after fields whose JSON cannot contain `,"instance":` or
 * `,"data":` unescaped.
 */
export function lastFieldText (frame: string, field: 'instance' | 'data'): string {
  const marker = `,"${field}":`
  return frame.slice(frame.indexOf(marker) + marker.length, -1)
}
