/**
 * The inspector and the demo in a real browser: Debian's Chromium driven by
 * playwright-core. The demo app (examples/tasks, built from lib/) has the
 * inspector on; the test opens its page, subscribes from the form, writes
 * from the request form and sees the broadcast in the log.
 *
 * Chromium is /usr/bin/chromium (CHROMIUM overrides it). Without it the test
 * is skipped locally, saying so; when CI is set it is required (.ci/run
 * installs it).
 */
import { access, readFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import ts from 'typescript'
import { chromium, type Browser, type Page } from 'playwright-core'
import { buildDemo } from '../examples/tasks/app.js'
import restLive from '../lib/index.js'

const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium'
// the flags this machine's Chromium needs: no sandbox as root, no network beyond the page
const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync']

async function chromiumMissing (): Promise<string | false> {
  try {
    await access(executablePath)
    return false
  } catch {
    const reason = `Chromium not found at ${executablePath} (apt-get install chromium, or set CHROMIUM)`
    if (process.env.CI) throw new Error(`CI is set, so the browser test must run: ${reason}`)
    return `${reason}: the browser test is skipped`
  }
}

async function clientSource (): Promise<string> {
  const source = await readFile(new URL('../lib/client/index.ts', import.meta.url), 'utf8')
  return ts.transpileModule(source, { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ES2022 } }).outputText
}

/** Fails the test on any error the page logs or throws. */
function watchErrors (t: Test, page: Page): void {
  page.on('pageerror', (err) => { t.fail(`the page threw: ${err.message}`) })
  page.on('console', (message) => { if (message.type() === 'error') t.fail(`the page logged an error: ${message.text()}`) })
}

const skip = await chromiumMissing()

t.test('in Chromium', { skip }, async (t) => {
  const app = await buildDemo({ restLive, clientSource: await clientSource() })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const origin = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const browser: Browser = await chromium.launch({ executablePath, args })
  t.teardown(async () => {
    await browser.close()
    await app.close()
  })

  t.test('the inspector: routes at startup, subscribe, write, see the frame, live counters', async (t) => {
    const page = await browser.newPage()
    t.teardown(async () => { await page.close() })
    watchErrors(t, page)
    const favicon: string[] = []
    page.on('request', (request) => { if (request.url().endsWith('/favicon.ico')) favicon.push(request.url()) })
    await page.goto(`${origin}/ws/subscribe/inspector`)
    await page.waitForSelector('#status[data-state=open]')

    // every realtime route, listed before anyone subscribed
    await page.waitForSelector('#routes tr[data-route="/tasks/:id"]')
    const routes = await page.$$eval('#routes tbody tr', (rows) => rows.map((row) => Array.from(row.querySelectorAll('td')).slice(0, 7).map((td) => td.textContent)))
    t.same(routes, [['/tasks', 'tasks', 'list', 'id', 'id', '0', '0'], ['/tasks/:id', 'tasks', 'retrieve', 'id', 'id', '0', '0']])

    // the form shows the fields of the target chosen
    t.equal(await page.isVisible('#subscribe [name=path]'), false)
    await page.selectOption('#subscribe [name=by]', 'path')
    t.equal(await page.isVisible('#subscribe [name=path]'), true)
    t.equal(await page.isVisible('#subscribe [name=lookup_by]'), false)

    // subscribe from the form, filled by the route's "Use" button
    await page.click('#routes tr[data-route="/tasks"] button')
    t.equal(await page.inputValue('#subscribe [name=model]'), 'tasks')
    t.equal(await page.inputValue('#subscribe [name=action]'), 'list')
    await page.fill('#subscribe [name=query_params]', '{"done": false}')
    await page.click('#subscribe button')
    await page.waitForSelector('#log li[data-type=subscribed]')
    t.match(await page.textContent('#log li[data-type=subscribed] pre'), /"id": 1,\s+"data": \[\s+\{\s+"id": 2,\s+"title": "Open this page in a second tab",/, 'pretty-printed, with the snapshot')
    await page.waitForSelector('#subscriptions li[data-state=open]')
    t.match(await page.textContent('#subscriptions'), '#1 tasks list query_params={"done":false}')

    // the counters follow, without a reload
    await page.waitForFunction(() => document.querySelector('#stats tr[data-stat=subscriptions] td')?.textContent === '1')
    await page.waitForFunction(() => document.querySelector('#routes tr[data-route="/tasks"] td:nth-child(7)')?.textContent === '1')

    // a write from the request form: its response, then the broadcast it causes
    await page.selectOption('#request [name=method]', 'POST')
    await page.fill('#request [name=path]', '/tasks')
    await page.fill('#request [name=body]', '{"title": "from the inspector"}')
    await page.click('#request button')
    await page.waitForSelector('#log li[data-type=response]')
    const broadcast = await page.waitForSelector('#log li[data-type=broadcast]')
    t.match(await broadcast.textContent(), /← received broadcast CREATED #1[\s\S]*"title": "from the inspector"/)
    await page.waitForFunction(() => Number(document.querySelector('#stats tr[data-stat=broadcastsSent] td')?.textContent) >= 1)

    // a write made elsewhere shows up too
    t.equal((await app.inject({ method: 'PATCH', url: '/tasks/3', payload: { done: true } })).statusCode, 200)
    await page.waitForSelector('#log li[data-type=broadcast] >> text=DELETED')

    // the log filters as you type; sent frames can be hidden
    await page.fill('#filter', 'created')
    const shown = await page.$$eval('#log li', (items) => (items as HTMLElement[]).filter((item) => !item.hidden).map((item) => item.dataset.type))
    t.same(shown, ['broadcast'])
    await page.fill('#filter', '')
    await page.uncheck('#show-sent')
    const received = await page.$$eval('#log li', (items) => (items as HTMLElement[]).filter((item) => !item.hidden).map((item) => item.dataset.direction))
    t.ok(received.length > 0 && received.every((direction) => direction === 'in'))
    await page.check('#show-sent')

    // a bad form says what is wrong and sends nothing
    const before = await page.$$eval('#log li', (items) => items.length)
    await page.fill('#subscribe [name=query_params]', '{done')
    await page.click('#subscribe button')
    t.equal(await page.textContent('#form-error'), 'query_params is not JSON: {done')
    t.equal(await page.$$eval('#log li', (items) => items.length), before)

    // unsubscribe
    await page.click('#subscriptions li[data-state=open] button')
    await page.waitForSelector('#log li[data-type=unsubscribed]')
    await page.waitForFunction(() => document.querySelector('#subscriptions')?.textContent === 'none')
    await page.waitForFunction(() => document.querySelector('#stats tr[data-stat=subscriptions] td')?.textContent === '0')
    t.same(favicon, [], 'the page asks for no favicon')
  })

  t.test('the demo: long frames and titles wrap inside the page', async (t) => {
    const page = await browser.newPage({ viewport: { width: 420, height: 800 } })
    t.teardown(async () => { await page.close() })
    watchErrors(t, page)
    await page.goto(origin)
    await page.waitForSelector('#status.live')
    await page.click('details summary')
    const title = 'x'.repeat(200)
    await page.fill('input[name=title]', title)
    await page.click('#add button')
    await page.waitForSelector(`#frames >> text=${title}`)
    await page.waitForSelector(`#tasks li >> text=${title}`)
    const widths = await page.evaluate(() => {
      const frames = document.querySelector('#frames') as HTMLElement
      return { page: document.documentElement.scrollWidth, viewport: window.innerWidth, frames: frames.scrollWidth, framesBox: frames.clientWidth }
    })
    t.ok(widths.page <= widths.viewport, `the page does not scroll sideways (${widths.page} > ${widths.viewport})`)
    t.ok(widths.frames <= widths.framesBox, `the frames panel does not either (${widths.frames} > ${widths.framesBox})`)
  })
})
