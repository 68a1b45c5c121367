/** Plain counters behind `app.realtime.stats()`. */
export interface Counters {
  broadcastsSent: number
  resyncsSent: number
  eventsReceived: number
  gapsDetected: number
  databaseChecks: number
}

export function createCounters (): Counters {
  return { broadcastsSent: 0, resyncsSent: 0, eventsReceived: 0, gapsDetected: 0, databaseChecks: 0 }
}
