/**
 * Renders bench/results.json as the markdown tables of docs/benchmarks.md, so
 * the figures in the docs always come from the run that wrote results.json.
 * `node bench/report.js` re-renders from the saved results.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const START = '<!-- results:start (written by bench/report.js) -->'
const END = '<!-- results:end -->'
const names = { ws: 'ws loop (limit)', ours: '**fastify-rest-live**', socketio: 'socket.io', mercurius: 'Mercurius', feathers: 'Feathers' }
const twoNodeNames = { ours: '**fastify-rest-live**', socketio: 'socket.io + redis-adapter', mercurius: 'Mercurius + mqemitter-redis', feathers: 'Feathers + feathers-sync' }

const int = (x) => Math.round(x).toLocaleString('en')
const kb = (bytes) => `${(bytes / 1024).toFixed(1)} KB`

function row (workload, system, n, v) {
  if (v?.error) return `| ${workload} | ${names[system] ?? system} | ${int(n)} | — | — | failed: ${v.error.replace(/\|/g, '/')} |`
  const note = v.timedOut ? `timed out (${v.deliveries}/${v.expected})` : (v.databaseQueriesPerChange ?? '')
  return `| ${workload} | ${names[system] ?? system} | ${int(n)} | ${int(v.perSecond)} | ${v.seconds.toFixed(3)} | ${note} |`
}

export function renderResults (results) {
  const { machine, versions, workloads: w, targets } = results
  const lines = [
    `One run on ${machine.date.slice(0, 10)}: ${machine.cpus} × ${machine.cpu} cores (shared by servers, load generator and Redis), ${machine.memoryGB} GB, ${machine.platform}, Node ${machine.node}; fastify ${versions.fastify}, ws ${versions.ws}, knex ${versions.knex}, better-sqlite3 ${versions['better-sqlite3']}. Figures move by about ±10–20% between runs.`,
    '',
    '| workload | system | N | deliveries/s | seconds | db queries / change |',
    '|---|---|---:|---:|---:|---:|'
  ]
  for (const [n, systems] of Object.entries(w.fanOut)) for (const [system, v] of Object.entries(systems)) lines.push(row('1 fan-out', system, Number(n), v))
  for (const [n, systems] of Object.entries(w.distinct)) for (const [system, v] of Object.entries(systems)) lines.push(row('2 distinct', system, Number(n), v))
  for (const [kind, v] of Object.entries(w.unsupported)) lines.push(row(`3 \`like\`, ${kind === 'shared' ? 'one shared view' : 'a view each'}`, 'ours', 1000, v))
  lines.push('', 'Workload 4, latency write on node A → frame on node B:', '', '| system | p50 | p95 | p99 |', '|---|---:|---:|---:|')
  for (const [system, v] of Object.entries(w.twoNodes)) {
    lines.push(v?.p50 === undefined ? `| ${twoNodeNames[system] ?? system} | — | — | ${v?.error ?? 'not run'} |` : `| ${twoNodeNames[system] ?? system} | ${v.p50.toFixed(2)} ms | ${v.p95.toFixed(2)} ms | ${v.p99.toFixed(2)} ms |`)
  }
  if (w.memory && !w.memory.error) {
    lines.push('', 'Workload 5, memory of fastify-rest-live:', '', '| | heap | RSS |', '|---|---:|---:|',
      `| per idle connection | ${kb(w.memory.heapPerConnection)} | ${kb(w.memory.rssPerConnection)} |`,
      `| per idle subscription, each on its own view | ${kb(w.memory.heapPerSubscription)} | ${kb(w.memory.rssPerSubscription)} |`)
    if (w.memorySharedView && !w.memorySharedView.error) lines.push(`| per idle subscription, all on one view | ${kb(w.memorySharedView.heapPerSubscription)} | ${kb(w.memorySharedView.rssPerSubscription)} |`)
  }
  lines.push('', '### Targets (from the same run)', '', '| target | measured | |', '|---|---:|---|')
  for (const [name, { value, met }] of Object.entries(targets)) lines.push(`| ${name} | ${value ?? 'n/a'} | ${met === null ? 'no figure (the run failed or was skipped)' : met ? 'met' : '**not met**'} |`)
  lines.push('', 'Every ratio (ours / peer) is in `bench/results.json`.')
  return lines.join('\n')
}

export function writeDocs (results, docsFile) {
  const text = readFileSync(docsFile, 'utf8')
  const start = text.indexOf(START)
  const end = text.indexOf(END)
  if (start === -1 || end === -1) throw new Error(`${docsFile} has no ${START} … ${END} region`)
  writeFileSync(docsFile, text.slice(0, start + START.length) + '\n' + renderResults(results) + '\n' + text.slice(end))
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const bench = dirname(fileURLToPath(import.meta.url))
  writeDocs(JSON.parse(readFileSync(join(bench, 'results.json'), 'utf8')), join(bench, '..', 'docs', 'benchmarks.md'))
}
