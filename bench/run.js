#!/usr/bin/env node
/**
 * `npm run bench`: fastify-rest-live against a plain `ws` loop (the limit) and
 * its peers (socket.io, Mercurius, Feathers), on loopback only.
 *
 * Every measurement runs the server in one child process and the load
 * generator in another (child_process.fork), then both are stopped. Prints a
 * table, writes bench/results.json and docs/benchmarks.svg.
 *
 * Environment: REDIS_URL (default redis://127.0.0.1:6379), BENCH_QUICK=1 for a
 * smaller run.
 */
import { execSync, fork } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir, totalmem } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { writeDocs } from './report.js'

const bench = dirname(fileURLToPath(import.meta.url))
const root = dirname(bench)
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const QUICK = process.env.BENCH_QUICK === '1'
const SIZES = QUICK ? [1000] : [1000, 10000]
const PEERS = ['socketio', 'mercurius', 'feathers']
const DEADLINE_MS = 20000
/** BENCH_ONLY=fanOut,distinct,unsupported,twoNodes,memory runs a subset. */
const ONLY = process.env.BENCH_ONLY?.split(',')
const want = (workload) => ONLY === undefined || ONLY.includes(workload)

/** Whether a source file under `dir` changed after `time` (dist/ is stale). */
function newerThan (dir, time) {
  return readdirSync(dir, { recursive: true }).some((file) => statSync(join(dir, file)).mtimeMs > time)
}

if (!existsSync(join(bench, 'node_modules'))) {
  console.log('bench: installing the peers (npm install in bench/)…')
  execSync('npm install --no-audit --no-fund', { cwd: bench, stdio: 'inherit' })
}
if (!existsSync(join(root, 'dist', 'index.js')) || newerThan(join(root, 'lib'), statSync(join(root, 'dist', 'index.js')).mtimeMs)) {
  console.log('bench: building the plugin (npm run build)…')
  execSync('npm run build', { cwd: root, stdio: 'inherit' })
}

// ----------------------------------------------------------------------------- child processes

function child (script, args = [], env = {}) {
  const extra = script === 'server.js' && process.env.BENCH_SERVER_ARGS ? process.env.BENCH_SERVER_ARGS.split(' ') : []
  const proc = fork(join(bench, script), args, { execArgv: ['--expose-gc', ...extra], env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'pipe', 'ipc'] })
  let seq = 0
  const pending = new Map()
  proc.on('message', (message) => {
    const entry = pending.get(message.seq)
    if (entry === undefined) return
    if (message.partial) { entry.partial?.(message); return }
    pending.delete(message.seq)
    if (message.error) entry.reject(new Error(`${script} ${args.join(' ')}: ${message.error}`))
    else entry.resolve(message)
  })
  let stderrTail = ''
  proc.on('error', () => {}) // a send to a process that died: reported through its pending calls
  proc.on('exit', (code, signal) => {
    const why = /heap out of memory/.test(stderrTail) ? ': JavaScript heap out of memory' : ''
    for (const entry of pending.values()) entry.reject(new Error(`${script} ${args.join(' ')} died (exit ${code ?? signal})${why}`))
    pending.clear()
  })
  proc.stderr.on('data', (data) => {
    stderrTail = (stderrTail + data).slice(-4000)
    if (!/Native stack trace|^\s*\d+: 0x/m.test(String(data))) process.stderr.write(data)
  })
  return {
    call (cmd, payload = {}, partial) {
      return new Promise((resolve, reject) => {
        if (!proc.connected) { reject(new Error(`${script} ${args.join(' ')} is not running`)); return }
        const id = ++seq
        pending.set(id, { resolve, reject, partial })
        proc.send({ seq: id, cmd, ...payload })
      })
    },
    async stop () {
      if (proc.exitCode !== null || !proc.connected) return
      await Promise.race([this.call('stop').catch(() => {}), new Promise((resolve) => setTimeout(resolve, 2000))])
      proc.kill()
    }
  }
}

async function until (check, timeoutMs, what) {
  const start = Date.now()
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** Arms the load generator for `total` deliveries, runs the write, and measures. */
async function measure (server, load, total, write, { latency = false, deadlineMs = DEADLINE_MS } = {}) {
  let armed
  const isArmed = new Promise((resolve) => { armed = resolve })
  const expecting = load.call('expect', { total, deadlineMs, latency }, armed)
  await isArmed
  let t0
  const writing = server.call('write', write, (message) => { t0 = message.t0 })
  const [result] = await Promise.all([expecting, writing])
  const seconds = (result.t1 - t0) / 1e9
  return { deliveries: result.count, expected: total, seconds, perSecond: result.count / seconds, timedOut: result.timedOut, latencies: result.latencies }
}

/** One server + one load generator: connect n clients, run `body`, stop both. */
async function scenario (system, n, owners, path, body, { redis, dbFile, nodes = 1 } = {}) {
  const servers = []
  const load = child('load.js')
  try {
    for (let node = 0; node < nodes; node++) {
      const server = child('server.js', [system], { BENCH_CREATE_TABLE: node === 0 ? '1' : '0' })
      servers.push(server)
      server.port = (await server.call('start', { redis, dbFile })).port
    }
    const receiver = servers[servers.length - 1]
    await load.call('connect', { system, port: receiver.port, n, owners, path })
    await until(async () => (await receiver.call('subscribers')).count >= n, 30000, `${system}: ${n} subscribers`)
    return await body({ writer: servers[0], receiver, load })
  } finally {
    await load.call('close').catch(() => {})
    await load.stop()
    for (const server of servers) await server.stop()
  }
}

const results = { machine: {}, versions: {}, workloads: {}, ratios: {}, targets: {}, notes: [] }
const failures = []

async function attempt (label, run) {
  const started = Date.now()
  try {
    const value = await run()
    console.log(`  ${label}: ${describe(value)} (${((Date.now() - started) / 1000).toFixed(1)} s)`)
    return value
  } catch (err) {
    console.log(`  ${label}: FAILED — ${String(err.message).split('\n')[0]}`)
    failures.push({ label, error: String(err.message).split('\n').slice(0, 3).join(' ') })
    return { error: String(err.message).split('\n')[0] }
  }
}

function describe (value) {
  if (value?.perSecond !== undefined) return `${Math.round(value.perSecond).toLocaleString('en')} deliveries/s${value.timedOut ? ` (timed out: ${value.deliveries}/${value.expected})` : ''}`
  if (value?.p50 !== undefined) return `p50 ${value.p50.toFixed(2)} ms, p95 ${value.p95.toFixed(2)} ms, p99 ${value.p99.toFixed(2)} ms`
  return JSON.stringify(value)
}

function percentile (sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
}

// ----------------------------------------------------------------------------- workloads

async function fanOut (system, n) {
  const writes = n >= 10000 ? 10 : 20
  const path = system === 'ours' ? '/tasks' : undefined
  return await scenario(system, n, 'all', path, async ({ writer, load }) => {
    await measure(writer, load, n, { kind: 'fanout', count: 1 }) // warm-up, and proof every client is listening
    const before = (await writer.call('stats')).databaseChecks
    const run = await measure(writer, load, n * writes, { kind: 'fanout', count: writes })
    const after = (await writer.call('stats')).databaseChecks
    return { ...run, writes, databaseQueriesPerChange: before === null ? null : (after - before) / writes }
  })
}

async function distinct (system, n) {
  const path = system === 'ours' ? '/mine' : undefined
  return await scenario(system, n, 'distinct', path, async ({ writer, load }) => {
    const before = (await writer.call('stats')).databaseChecks
    const run = await measure(writer, load, n, { kind: 'distinct', owners: n })
    const after = (await writer.call('stats')).databaseChecks
    return { ...run, writes: n, databaseQueriesPerChange: before === null ? null : (after - before) / n }
  })
}

async function unsupported (path, owners, n, writes) {
  return await scenario('ours', n, owners, path, async ({ writer, load }) => {
    const before = (await writer.call('stats')).databaseChecks
    const expected = owners === 'distinct' ? 0 : n * writes
    // `distinct`: writes for owner 1 only, so one subscriber in n hears each; the cost is in the checks
    const run = await measure(writer, load, owners === 'distinct' ? writes : expected, { kind: 'fanout', count: writes })
    const after = (await writer.call('stats')).databaseChecks
    return { ...run, writes, databaseQueriesPerChange: (after - before) / writes }
  })
}

async function twoNodes (system) {
  const rate = 100
  const seconds = QUICK ? 3 : 5
  const n = 50
  const dbFile = join(tmpdir(), `rest-live-bench-${process.pid}-${system}.sqlite`)
  try {
    const path = system === 'ours' ? '/mine' : undefined
    return await scenario(system, n, 'one', path, async ({ writer, load }) => {
      const total = n * rate * seconds
      const run = await measure(writer, load, total, { kind: 'steady', rate, seconds }, { latency: true, deadlineMs: seconds * 1000 + 10000 })
      const sorted = run.latencies.sort((a, b) => a - b)
      return {
        deliveries: run.deliveries,
        expected: total,
        writesPerSecond: rate,
        subscribers: n,
        p50: percentile(sorted, 0.5),
        p95: percentile(sorted, 0.95),
        p99: percentile(sorted, 0.99),
        max: sorted[sorted.length - 1],
        timedOut: run.timedOut
      }
    }, { redis: REDIS_URL, dbFile, nodes: 2 })
  } finally {
    for (const suffix of ['', '-wal', '-shm']) rmSync(dbFile + suffix, { force: true })
  }
}

async function memory (path) {
  const n = QUICK ? 1000 : 5000
  const server = child('server.js', ['ours'])
  const load = child('load.js')
  try {
    const { port } = await server.call('start', {})
    const base = (await server.call('stats')).memory
    await load.call('connect', { system: 'ours', port, n, owners: 'distinct', path: null })
    const connected = (await server.call('stats')).memory
    await load.call('subscribe', { path })
    await until(async () => (await server.call('subscribers')).count >= n, 30000, 'subscriptions')
    const subscribed = (await server.call('stats')).memory
    return {
      connections: n,
      rssPerConnection: (connected.rss - base.rss) / n,
      heapPerConnection: (connected.heapUsed - base.heapUsed) / n,
      rssPerSubscription: (subscribed.rss - connected.rss) / n,
      heapPerSubscription: (subscribed.heapUsed - connected.heapUsed) / n
    }
  } finally {
    await load.call('close').catch(() => {})
    await load.stop()
    await server.stop()
  }
}

// ----------------------------------------------------------------------------- run

function version (pkg, from = bench) {
  for (const base of [join(from, 'node_modules'), join(root, 'node_modules')]) {
    const file = join(base, pkg, 'package.json')
    if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')).version
  }
  return null
}

async function main () {
  const started = Date.now()
  results.machine = { cpus: cpus().length, cpu: cpus()[0]?.model, memoryGB: Math.round(totalmem() / 2 ** 30), platform: `${process.platform} ${process.arch}`, node: process.version, date: new Date().toISOString() }
  results.versions = {
    'fastify-rest-live': JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version,
    fastify: version('fastify', root),
    ws: version('ws', root),
    knex: version('knex', root),
    'better-sqlite3': version('better-sqlite3', root),
    'socket.io': version('socket.io'),
    '@socket.io/redis-adapter': version('@socket.io/redis-adapter'),
    mercurius: version('mercurius'),
    'mqemitter-redis': version('mqemitter-redis'),
    '@feathersjs/feathers': version('@feathersjs/feathers'),
    '@feathersjs/knex': version('@feathersjs/knex'),
    'feathers-sync': version('feathers-sync')
  }
  const w = results.workloads
  Object.assign(w, { fanOut: {}, distinct: {}, unsupported: {}, twoNodes: {}, memory: undefined })
  console.log(`fastify-rest-live benchmark — ${results.machine.cpus} × ${results.machine.cpu}, Node ${process.version}${QUICK ? ' (quick)' : ''}`)

  if (want('fanOut')) console.log('\n1. fan-out: one write → N subscribers of the same list')
  for (const n of want('fanOut') ? SIZES : []) {
    w.fanOut[n] = {}
    for (const system of ['ws', 'ours', ...PEERS]) w.fanOut[n][system] = await attempt(`N=${n} ${system}`, () => fanOut(system, n))
  }

  if (want('distinct')) console.log('\n2. distinct filters: N subscribers each on its own owner, one write per owner')
  for (const n of want('distinct') ? SIZES : []) {
    w.distinct[n] = {}
    for (const system of ['ours', ...PEERS]) w.distinct[n][system] = await attempt(`N=${n} ${system}`, () => distinct(system, n))
  }

  if (want('unsupported')) {
    console.log('\n3. a queryset the evaluator cannot handle (title like \'a%\')')
    w.unsupported.shared = await attempt('1000 subscribers, one shared view', () => unsupported('/like', 'all', 1000, 20))
    w.unsupported.distinct = await attempt('1000 subscribers, one view each (owner + like)', () => unsupported('/mine-like', 'distinct', 1000, 20))
  }

  if (want('twoNodes')) {
    console.log('\n4. two nodes over Redis: write on node A → frame on node B')
    for (const system of ['ours', ...PEERS]) w.twoNodes[system] = await attempt(system, () => twoNodes(system))
  }

  if (want('memory')) {
    console.log('\n5. memory (fastify-rest-live)')
    w.memory = await attempt('idle connections, then one subscription each, each its own view (/mine)', () => memory('/mine'))
    w.memorySharedView = await attempt('idle connections, then one subscription each, all one view (/tasks)', () => memory('/tasks'))
  }

  ratiosAndTargets()
  results.failures = failures
  results.durationSeconds = (Date.now() - started) / 1000
  writeFileSync(join(bench, 'results.json'), JSON.stringify(results, null, 2) + '\n')
  mkdirSync(join(root, 'docs'), { recursive: true })
  writeFileSync(join(root, 'docs', 'benchmarks.svg'), chart())
  // the docs' tables show a full run only, never a subset
  const full = ONLY === undefined && !QUICK
  if (full) writeDocs(results, join(root, 'docs', 'benchmarks.md'))
  printTable()
  console.log(`\nwrote bench/results.json, docs/benchmarks.svg${full ? ' and the tables of docs/benchmarks.md' : ''} in ${results.durationSeconds.toFixed(0)} s`)
}

const rate = (value) => value?.error === undefined && value?.perSecond !== undefined && !value.timedOut ? value.perSecond : undefined
const round = (x, digits = 2) => x === undefined || !Number.isFinite(x) ? null : Number(x.toFixed(digits))

function ratiosAndTargets () {
  const w = results.workloads
  const r = results.ratios
  const big = SIZES[SIZES.length - 1]
  for (const n of SIZES) {
    const ours = rate(w.fanOut[n]?.ours)
    r[`fanOut${n}_ours_vs_wsLimit`] = round(ours / rate(w.fanOut[n]?.ws))
    for (const peer of PEERS) {
      r[`fanOut${n}_ours_vs_${peer}`] = round(ours / rate(w.fanOut[n]?.[peer]))
      r[`distinct${n}_ours_vs_${peer}`] = round(rate(w.distinct[n]?.ours) / rate(w.distinct[n]?.[peer]))
    }
    // time per delivery, distinct filters vs fan-out: > 1 means distinct is slower
    r[`distinct${n}_timePerDelivery_vs_fanOut`] = round(ours / rate(w.distinct[n]?.ours))
  }
  for (const peer of PEERS) {
    const ours = w.twoNodes.ours
    const theirs = w.twoNodes[peer]
    if (ours?.p50 !== undefined && theirs?.p50 !== undefined) r[`twoNodes_p99_ours_vs_${peer}`] = round(ours.p99 / theirs.p99)
  }
  const t = results.targets
  const met = (value, ok) => ({ value, met: value === null || value === undefined ? null : ok(value) })
  t['workload 1 ≥ 0.8× ws limit'] = met(r[`fanOut${big}_ours_vs_wsLimit`], (x) => x >= 0.8)
  t['workload 2 time per delivery ≤ 1.5× workload 1'] = met(r[`distinct${big}_timePerDelivery_vs_fanOut`], (x) => x <= 1.5)
  const queries = [w.fanOut[big]?.ours?.databaseQueriesPerChange, w.distinct[big]?.ours?.databaseQueriesPerChange]
  t['0 database queries per change (simple filters)'] = met(queries.every((q) => q === 0) ? 0 : queries.find((q) => q !== 0) ?? null, (x) => x === 0)
  for (const peer of ['mercurius', 'feathers']) {
    t[`≥ 3× ${peer} deliveries/s (fan-out, N=${big})`] = met(r[`fanOut${big}_ours_vs_${peer}`], (x) => x >= 3)
    t[`≥ 3× ${peer} deliveries/s (distinct, N=${big})`] = met(r[`distinct${big}_ours_vs_${peer}`], (x) => x >= 3)
  }
  t['≤ 1 KB per idle subscription (heap, own view)'] = met(w.memory?.heapPerSubscription === undefined ? null : round(w.memory.heapPerSubscription, 0), (x) => x <= 1024)
  t['≤ 1 KB per idle subscription (heap, shared view)'] = met(w.memorySharedView?.heapPerSubscription === undefined ? null : round(w.memorySharedView.heapPerSubscription, 0), (x) => x <= 1024)
}

function printTable () {
  const w = results.workloads
  const rows = [['workload', 'system', 'N', 'deliveries/s', 'seconds', 'db queries/change', 'note']]
  const cell = (v) => v?.error ? ['—', '—', '—', `failed: ${v.error.slice(0, 50)}`] : [Math.round(v.perSecond).toLocaleString('en'), v.seconds.toFixed(3), v.databaseQueriesPerChange ?? '', v.timedOut ? `timed out (${v.deliveries}/${v.expected})` : '']
  for (const n of SIZES) for (const [system, v] of Object.entries(w.fanOut[n] ?? {})) rows.push(['1 fan-out', system, n, ...cell(v)])
  for (const n of SIZES) for (const [system, v] of Object.entries(w.distinct[n] ?? {})) rows.push(['2 distinct', system, n, ...cell(v)])
  for (const [kind, v] of Object.entries(w.unsupported)) rows.push([`3 like (${kind})`, 'ours', 1000, ...cell(v)])
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => String(row[i]).length)))
  console.log('\n' + rows.map((row) => row.map((c, i) => String(c).padEnd(widths[i])).join('  ')).join('\n'))
  console.log('\n4 two nodes over Redis (latency write on A → frame on B)')
  for (const [system, v] of Object.entries(w.twoNodes)) console.log(`  ${system.padEnd(10)} ${describe(v)}`)
  const m = w.memory
  if (m && !m.error) console.log(`\n5 memory: ${Math.round(m.rssPerConnection)} B RSS / ${Math.round(m.heapPerConnection)} B heap per idle connection; ${Math.round(m.rssPerSubscription)} B RSS / ${Math.round(m.heapPerSubscription)} B heap per idle subscription (own view)`)
  const shared = w.memorySharedView
  if (shared && !shared.error) console.log(`  ${Math.round(shared.rssPerSubscription)} B RSS / ${Math.round(shared.heapPerSubscription)} B heap per idle subscription sharing one view`)
  console.log('\nratios (ours / other):')
  for (const [name, value] of Object.entries(results.ratios)) console.log(`  ${name}: ${value ?? 'n/a'}`)
  console.log('\ntargets:')
  for (const [name, { value, met }] of Object.entries(results.targets)) console.log(`  ${met === null ? '?' : met ? '✓' : '✗'} ${name}: ${value ?? 'n/a'}`)
}

// ----------------------------------------------------------------------------- chart

function chart () {
  const w = results.workloads
  const colors = { ws: '#9ca3af', ours: '#2563eb', socketio: '#10b981', mercurius: '#e11d48', feathers: '#f59e0b' }
  const labels = { ws: 'ws loop (limit)', ours: 'fastify-rest-live', socketio: 'socket.io', mercurius: 'Mercurius', feathers: 'Feathers' }
  const groups = []
  for (const n of SIZES) if (w.fanOut[n]) groups.push({ title: `1. fan-out, N=${n.toLocaleString('en')}`, values: w.fanOut[n] })
  for (const n of SIZES) if (w.distinct[n]) groups.push({ title: `2. distinct filters, N=${n.toLocaleString('en')}`, values: w.distinct[n] })
  const max = Math.max(1, ...groups.flatMap((g) => Object.values(g.values).map((v) => v?.perSecond ?? 0)))
  const barH = 16
  const width = 760
  const left = 230
  const scale = (width - left - 120) / max
  let y = 50
  const parts = []
  for (const group of groups) {
    parts.push(`<text x="10" y="${y}" font-weight="bold">${group.title}</text>`)
    y += 8
    for (const [system, v] of Object.entries(group.values)) {
      const value = v?.perSecond ?? 0
      const text = v?.error ? 'failed' : `${Math.round(value).toLocaleString('en')}/s${v.timedOut ? ' (timed out)' : ''}`
      parts.push(`<text x="${left - 8}" y="${y + 12}" text-anchor="end">${labels[system]}</text>`)
      parts.push(`<rect x="${left}" y="${y}" width="${Math.max(1, value * scale).toFixed(1)}" height="${barH}" fill="${colors[system]}"/>`)
      parts.push(`<text x="${left + Math.max(1, value * scale) + 6}" y="${y + 12}">${text}</text>`)
      y += barH + 4
    }
    y += 18
  }
  parts.push(`<text x="10" y="${y}" font-weight="bold">4. two nodes over Redis: latency write → frame (ms, p50 / p95 / p99)</text>`)
  y += 8
  const latMax = Math.max(1, ...Object.values(w.twoNodes).map((v) => v?.p99 ?? 0))
  const latScale = (width - left - 160) / latMax
  for (const [system, v] of Object.entries(w.twoNodes)) {
    parts.push(`<text x="${left - 8}" y="${y + 12}" text-anchor="end">${labels[system]}</text>`)
    if (v?.p50 !== undefined) {
      parts.push(`<rect x="${left}" y="${y}" width="${(v.p99 * latScale).toFixed(1)}" height="${barH}" fill="${colors[system]}" opacity="0.35"/>`)
      parts.push(`<rect x="${left}" y="${y}" width="${(v.p95 * latScale).toFixed(1)}" height="${barH}" fill="${colors[system]}" opacity="0.6"/>`)
      parts.push(`<rect x="${left}" y="${y}" width="${(v.p50 * latScale).toFixed(1)}" height="${barH}" fill="${colors[system]}"/>`)
      parts.push(`<text x="${left + v.p99 * latScale + 6}" y="${y + 12}">${v.p50.toFixed(1)} / ${v.p95.toFixed(1)} / ${v.p99.toFixed(1)}</text>`)
    } else {
      parts.push(`<text x="${left}" y="${y + 12}">not measured${v?.error ? ': failed' : ''}</text>`)
    }
    y += barH + 4
  }
  y += 10
  const m = results.machine
  parts.push(`<text x="10" y="${y}" fill="#555">${m.cpus} × ${escapeXml(m.cpu ?? '')}, Node ${m.node}, ${m.date.slice(0, 10)} — loopback, load generator in a separate process</text>`)
  const height = y + 20
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="24" font-size="15" font-weight="bold">fastify-rest-live benchmark: deliveries per second (higher is better)</text>
${parts.join('\n')}
</svg>
`
}

function escapeXml (text) {
  return text.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c])
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
