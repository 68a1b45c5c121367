/**
 * The debug page (`inspector: true`): counters and, per realtime route, how
 * many distinct views and subscriptions this node holds. It shows no rows, SQL
 * or bindings, so it leaks nothing about users; it is still off by default.
 */
import type { FastifyInstance } from 'fastify'
import type { RealtimeStats } from '../types.js'

export interface InspectorSource {
  stats: () => RealtimeStats
  routes: () => Array<{ model: string, route: string, kind: string, views: number, subscriptions: number }>
}

const page = (jsonUrl: string): string => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fastify-rest-live inspector</title>
<style>body{font:14px system-ui,sans-serif;margin:2rem}table{border-collapse:collapse;margin-bottom:1.5rem}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}</style>
</head><body><h1>fastify-rest-live inspector</h1>
<h2>Counters</h2><table id="stats"></table><h2>Routes</h2><table id="routes"></table>
<script type="module">
const cell = (tag, text) => { const el = document.createElement(tag); el.textContent = String(text); return el }
async function refresh () {
  const data = await (await fetch(${JSON.stringify(jsonUrl)})).json()
  const stats = document.getElementById('stats'); stats.replaceChildren()
  for (const [name, value] of Object.entries(data.stats)) { const tr = document.createElement('tr'); tr.append(cell('th', name), cell('td', value)); stats.append(tr) }
  const routes = document.getElementById('routes'); routes.replaceChildren()
  const head = document.createElement('tr'); for (const h of ['route', 'model', 'kind', 'views', 'subscriptions']) head.append(cell('th', h)); routes.append(head)
  for (const r of data.routes) { const tr = document.createElement('tr'); for (const v of [r.route, r.model, r.kind, r.views, r.subscriptions]) tr.append(cell('td', v)); routes.append(tr) }
}
refresh(); setInterval(refresh, 1000)
</script></body></html>`

export function registerInspector (app: FastifyInstance, basePath: string, source: InspectorSource): void {
  const htmlUrl = `${basePath}/inspector`
  const jsonUrl = `${basePath}/inspector.json`
  app.get(htmlUrl, async (_request, reply) => await reply.type('text/html; charset=utf-8').send(page(jsonUrl)))
  app.get(jsonUrl, async () => ({ stats: source.stats(), routes: source.routes() }))
}
