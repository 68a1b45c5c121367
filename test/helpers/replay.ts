/**
 * What a client holds after applying a subscription's snapshot and then its
 * broadcasts (and resyncs), in order: the view the plugin promises equals REST.
 */
import type { Frame } from './ws-client.js'

type Item = Record<string, unknown>

/** A list view as an array sorted by `pk` (the REST routes order by it). */
export function replayList (frames: Frame[], id: string | number, pk = 'id'): Item[] {
  const rows = new Map<unknown, Item>()
  for (const frame of frames) {
    if (frame.id !== id) continue
    if ((frame.type === 'subscribed' && frame.data !== undefined) || frame.type === 'resync') {
      rows.clear()
      for (const row of frame.data as Item[]) rows.set(row[pk], row)
    } else if (frame.type === 'broadcast') {
      const instance = frame.instance as Item
      if (frame.action === 'DELETED') rows.delete(instance[pk])
      else rows.set(instance[pk], instance)
    }
  }
  return [...rows.values()].sort((a, b) => Number(a[pk]) - Number(b[pk]))
}

/** A retrieve view: the instance, or null once it is gone. */
export function replayRetrieve (frames: Frame[], id: string | number): Item | null {
  let current: Item | null = null
  for (const frame of frames) {
    if (frame.id !== id) continue
    if ((frame.type === 'subscribed' && frame.data !== undefined) || frame.type === 'resync') current = frame.data as Item | null
    else if (frame.type === 'broadcast') current = frame.action === 'DELETED' ? null : frame.instance as Item
  }
  return current
}
