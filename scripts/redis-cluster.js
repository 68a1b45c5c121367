/**
 * A private 3-master Redis Cluster for the cluster tests (sharded pub/sub needs Redis >= 7).
 *
 *   node scripts/redis-cluster.js start   starts it (or reuses a running one), prints
 *                                         REDIS_CLUSTER_URL=redis://127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103
 *   node scripts/redis-cluster.js stop    stops exactly the redis-server processes `start` launched
 *
 * Ports: REDIS_CLUSTER_PORTS (default 7101,7102,7103); each also uses port + 10000
 * for the cluster bus. Everything lives in a temporary directory (no persistence),
 * removed by `stop`; the PIDs are kept there, so `stop` never kills anything else.
 * Nothing here touches the Redis on 6379.
 */
import { spawn, execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const ports = (process.env.REDIS_CLUSTER_PORTS ?? '7101,7102,7103').split(',').map(Number)
const dir = join(tmpdir(), `fastify-rest-live-redis-cluster-${ports[0]}`)
const stateFile = join(dir, 'state.json')
const url = `redis://${ports.map((port) => `127.0.0.1:${port}`).join(',')}`

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms) })

function cli (port, ...args) {
  return execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

function alive (pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function free (port) {
  return await new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => { resolve(false) })
    server.listen(port, '127.0.0.1', () => { server.close(() => { resolve(true) }) })
  })
}

function clusterOk () {
  return ports.every((port) => {
    try {
      return /cluster_state:ok/.test(cli(port, 'cluster', 'info'))
    } catch {
      return false
    }
  })
}

/** Polls `check` until it holds, or fails naming `what`. */
async function until (check, what, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (logs in ${dir})`)
    await sleep(100)
  }
}

function readState () {
  return existsSync(stateFile) ? JSON.parse(readFileSync(stateFile, 'utf8')) : undefined
}

async function start () {
  const state = readState()
  if (state !== undefined && state.pids.every(alive) && clusterOk()) {
    console.log(`REDIS_CLUSTER_URL=${url}`)
    return
  }
  if (state !== undefined) await stop()
  for (const port of ports) {
    for (const p of [port, port + 10000]) {
      if (!await free(p)) throw new Error(`port ${p} is in use: set REDIS_CLUSTER_PORTS to three free ports (each also uses port + 10000)`)
    }
  }
  mkdirSync(dir, { recursive: true })
  const pids = []
  for (const port of ports) {
    const child = spawn('redis-server', [
      '--port', String(port), '--bind', '127.0.0.1',
      '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '5000',
      '--dir', dir, '--save', '', '--appendonly', 'no', '--logfile', join(dir, `${port}.log`)
    ], { detached: true, stdio: 'ignore' })
    child.unref()
    pids.push(child.pid)
  }
  writeFileSync(stateFile, JSON.stringify({ pids, ports }))
  await until(() => ports.every((port) => { try { return cli(port, 'ping').trim() === 'PONG' } catch { return false } }), 'the redis-server processes to answer')
  cli(ports[0], '--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '0', '--cluster-yes')
  await until(clusterOk, 'cluster_state:ok on every node')
  console.log(`REDIS_CLUSTER_URL=${url}`)
}

async function stop () {
  const state = readState()
  if (state !== undefined) {
    for (const pid of state.pids) if (alive(pid)) process.kill(pid, 'SIGTERM')
    // gone once their ports are free (a dead server may linger as a zombie, still "alive" to kill -0)
    const deadline = Date.now() + 10_000
    for (const port of state.ports) {
      while (!await free(port) && Date.now() < deadline) await sleep(100)
    }
  }
  // a server still writing its nodes.conf on the way out: retry
  rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 })
}

const command = process.argv[2]
if (command === 'start') {
  try {
    await start()
  } catch (err) {
    console.error(`error: ${err.message}`)
    process.exit(1)
  }
} else if (command === 'stop') {
  await stop()
} else {
  console.error('usage: node scripts/redis-cluster.js start|stop')
  process.exit(2)
}
