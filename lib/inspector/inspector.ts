/**
 * The debug page (`inspector: true`), at `<path>/inspector`: every realtime
 * route with its model and kind, live counters, forms to subscribe,
 * unsubscribe and send requests over a socket of the page's own, and a log of
 * the frames that socket sends and receives. Its data, `<path>/inspector.json`,
 * holds counters and routes only: no rows, SQL or bindings. The page's socket
 * is an ordinary client, with the browser's credentials, so it sees what those
 * credentials may see. Off by default.
 */
import type { FastifyInstance } from 'fastify'
import type { RealtimeStats } from '../types.js'
import { inspectorPage } from './page.js'

/** A realtime route as the registry declares it. */
export interface DeclaredRoute {
  url: string
  model: string
  kind: string
  lookup: string
  pk: string
}

/** What this node holds for a route someone follows. */
export interface RouteActivity {
  model: string
  route: string
  kind: string
  views: number
  subscriptions: number
}

/** One row of the page's route table. */
export interface InspectedRoute {
  route: string
  model: string
  kind: string
  lookup: string
  pk: string
  views: number
  subscriptions: number
}

export interface InspectorData {
  stats: RealtimeStats
  routes: InspectedRoute[]
}

export interface InspectorSource {
  stats: () => RealtimeStats
  /** Views and subscriptions per followed route (routes nobody follows are absent). */
  routes: () => RouteActivity[]
  /** Every realtime route, in registration order. */
  declared: () => DeclaredRoute[]
}

/** Every declared route, with what this node holds for it. */
export function inspect (source: InspectorSource): InspectorData {
  const activity = new Map(source.routes().map((entry) => [entry.route, entry]))
  const routes = source.declared().map(({ url, model, kind, lookup, pk }) => {
    const held = activity.get(url)
    return { route: url, model, kind, lookup, pk, views: held?.views ?? 0, subscriptions: held?.subscriptions ?? 0 }
  })
  return { stats: source.stats(), routes }
}

export function registerInspector (app: FastifyInstance, basePath: string, source: InspectorSource): void {
  const htmlUrl = `${basePath}/inspector`
  const jsonUrl = `${basePath}/inspector.json`
  const html = inspectorPage({ socketPath: basePath, jsonUrl })
  app.get(htmlUrl, async (_request, reply) => await reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(html))
  app.get(jsonUrl, async (_request, reply) => await reply.header('cache-control', 'no-store').send(inspect(source)))
}
