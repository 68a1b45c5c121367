/**
 * The inspector's page: plain HTML, CSS and one inline script, no build step
 * and nothing to fetch but the page's own JSON and socket. The script is the
 * function below, serialized with its source: it is type-checked with the
 * rest of lib/ and runs only in the browser (test/inspector-browser.test.ts).
 */

export interface PageConfig {
  /** The plugin's WebSocket path, e.g. `/ws/subscribe`. */
  socketPath: string
  /** The inspector's JSON, e.g. `/ws/subscribe/inspector.json`. */
  jsonUrl: string
}

const style = `
*{box-sizing:border-box}
[hidden]{display:none !important}
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{display:flex;align-items:center;gap:.8rem;padding:.7rem 1.2rem;background:#1d2430;color:#fff}
header h1{font-size:1.05rem;margin:0;font-weight:600}
#status{font-size:.8rem;padding:.1rem .55rem;border-radius:1rem;background:#666}
#status[data-state=open]{background:#1f8a4c}#status[data-state=closed]{background:#b33}
main{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1.1fr);gap:1rem;padding:1rem 1.2rem}
@media (max-width:60rem){main{grid-template-columns:minmax(0,1fr)}}
section{background:#fff;border-radius:.5rem;box-shadow:0 1px 3px #0002;padding:.4rem 1rem 1rem;min-width:0}
h2{font-size:.95rem;margin:1rem 0 .4rem}
table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #e4e6ea;padding:.25rem .5rem;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{font-weight:600;color:#555}td.num{text-align:right;font-variant-numeric:tabular-nums}
form{display:flex;flex-wrap:wrap;gap:.4rem .8rem;align-items:end}
label{display:flex;flex-direction:column;font-size:.8rem;color:#555}
label.inline{flex-direction:row;align-items:center;gap:.3rem}
input,select,textarea,button{font:inherit}
input[type=text],textarea{min-width:8rem}
textarea{width:100%;min-height:3.5rem;font-family:ui-monospace,monospace}
.wide{flex-basis:100%}
fieldset{border:0;padding:0;margin:0;display:flex;flex-wrap:wrap;gap:.4rem .8rem}
.error{color:#b33;min-height:1.2em;margin:.3rem 0;font-size:.85rem}
#subscriptions{list-style:none;padding:0;margin:0}
#subscriptions li{display:flex;gap:.5rem;align-items:center;padding:.15rem 0;overflow-wrap:anywhere}
#subscriptions li[data-state=pending]{color:#888}
.tools{display:flex;gap:.6rem;align-items:center;flex-wrap:wrap;margin-bottom:.5rem}
#filter{flex:1;min-width:10rem}
#log{list-style:none;padding:0;margin:0;max-height:calc(100vh - 9rem);overflow:auto}
#log li{border-bottom:1px solid #eee;padding:.3rem 0}
#log .meta{font-size:.8rem;color:#555}
#log li[data-direction=out] .meta{color:#2456a6}
#log li[data-type=error] .meta{color:#b33}
#log pre{margin:.2rem 0 0;white-space:pre-wrap;overflow-wrap:anywhere;font:12px/1.4 ui-monospace,monospace;background:#f6f7f9;padding:.3rem .5rem;border-radius:.3rem}
`

/* c8 ignore start: runs in the browser, where test/inspector-browser.test.ts drives it */
function inspectorScript (config: PageConfig): void {
  interface Frame { type: string, id?: string | number | null, [key: string]: unknown }
  interface Route { route: string, model: string, kind: string, lookup: string, pk: string, views: number, subscriptions: number }
  interface Data { stats: Record<string, number>, routes: Route[] }

  const $ = <T extends Element>(selector: string): T => {
    const element = document.querySelector<T>(selector)
    if (element === null) throw new Error(`inspector: no ${selector}`)
    return element
  }
  const cell = (tag: string, text: unknown, className?: string): HTMLElement => {
    const element = document.createElement(tag)
    element.textContent = String(text)
    if (className !== undefined) element.className = className
    return element
  }
  const MAX_LOG = 500

  // --- the socket and the frame log
  let socket: WebSocket | undefined
  let nextId = 1
  const subscriptions = new Map<string, { frame: Frame, state: 'pending' | 'open' }>()
  const status = $<HTMLElement>('#status')
  const log = $<HTMLOListElement>('#log')
  const filter = $<HTMLInputElement>('#filter')
  const showSent = $<HTMLInputElement>('#show-sent')

  function setStatus (state: string, text: string): void {
    status.dataset.state = state
    status.textContent = text
    $<HTMLButtonElement>('#reconnect').hidden = state !== 'closed'
  }

  function visible (entry: HTMLElement): boolean {
    if (entry.dataset.direction === 'out' && !showSent.checked) return false
    const needle = filter.value.trim().toLowerCase()
    return needle === '' || (entry.textContent ?? '').toLowerCase().includes(needle)
  }

  function record (direction: 'in' | 'out', frame: Frame | string): void {
    const entry = document.createElement('li')
    const type = typeof frame === 'string' ? 'unreadable' : frame.type
    entry.dataset.direction = direction
    entry.dataset.type = type
    const id = typeof frame === 'string' || frame.id === undefined ? '' : ` #${JSON.stringify(frame.id)}`
    const action = typeof frame !== 'string' && typeof frame.action === 'string' ? ` ${frame.action}` : ''
    entry.append(
      cell('div', `${new Date().toLocaleTimeString(undefined, { hour12: false })} ${direction === 'out' ? '→ sent' : '← received'} ${type}${action}${id}`, 'meta'),
      cell('pre', typeof frame === 'string' ? frame : JSON.stringify(frame, null, 2))
    )
    entry.hidden = !visible(entry)
    log.prepend(entry)
    while (log.children.length > MAX_LOG) log.lastElementChild?.remove()
  }

  function applyFilter (): void {
    for (const entry of Array.from(log.children) as HTMLElement[]) entry.hidden = !visible(entry)
  }

  function send (frame: Frame): boolean {
    if (socket === undefined || socket.readyState !== WebSocket.OPEN) {
      showError('the socket is not open: reconnect first')
      return false
    }
    socket.send(JSON.stringify(frame))
    record('out', frame)
    return true
  }

  function connect (): void {
    setStatus('connecting', 'connecting…')
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${config.socketPath}`
    const ws = new WebSocket(url)
    socket = ws
    ws.addEventListener('open', () => { setStatus('open', `open: ${config.socketPath}`) })
    ws.addEventListener('close', (event) => {
      setStatus('closed', `closed (${event.code}${event.reason === '' ? '' : ` ${event.reason}`})`)
      subscriptions.clear()
      renderSubscriptions()
    })
    ws.addEventListener('message', (event) => {
      let frame: Frame
      try {
        // JSON.parse, not lib/json.ts: this page runs in the browser, on the server's own frames
        frame = JSON.parse(String(event.data)) as Frame
      } catch {
        record('in', String(event.data))
        return
      }
      record('in', frame)
      track(frame)
    })
  }

  // --- open subscriptions
  function track (frame: Frame): void {
    const key = JSON.stringify(frame.id)
    const subscription = subscriptions.get(key)
    if (subscription === undefined) return
    if (frame.type === 'subscribed') subscription.state = 'open'
    else if (frame.type === 'unsubscribed' || (frame.type === 'error' && subscription.state === 'pending')) subscriptions.delete(key)
    else return
    renderSubscriptions()
  }

  function describe (frame: Frame): string {
    if (typeof frame.path === 'string') return frame.path
    const parts = [String(frame.model), String(frame.action)]
    if (frame.lookup_by !== undefined) parts.push(`lookup_by=${JSON.stringify(frame.lookup_by)}`)
    if (frame.view_kwargs !== undefined) parts.push(`view_kwargs=${JSON.stringify(frame.view_kwargs)}`)
    if (frame.query_params !== undefined) parts.push(`query_params=${JSON.stringify(frame.query_params)}`)
    return parts.join(' ')
  }

  function renderSubscriptions (): void {
    const list = $<HTMLUListElement>('#subscriptions')
    list.replaceChildren(...[...subscriptions].map(([key, { frame, state }]) => {
      const item = document.createElement('li')
      item.dataset.state = state
      item.dataset.id = key
      const button = cell('button', 'Unsubscribe')
      button.addEventListener('click', () => { send({ type: 'unsubscribe', id: frame.id ?? null }) })
      item.append(cell('span', `#${key} ${describe(frame)}${state === 'pending' ? ' (waiting)' : ''}`), button)
      return item
    }))
    if (subscriptions.size === 0) list.append(cell('li', 'none'))
  }

  // --- forms
  function showError (message: string): void {
    $<HTMLElement>('#form-error').textContent = message
  }

  function json (name: string, text: string): unknown {
    if (text.trim() === '') return undefined
    try {
      return JSON.parse(text) as unknown
    } catch {
      throw new Error(`${name} is not JSON: ${text}`)
    }
  }

  /** A number stays a number ("7" → 7), anything else a string, as the protocol's scalars. */
  function scalar (text: string): string | number {
    return /^-?\d+(\.\d+)?$/.test(text.trim()) ? Number(text) : text
  }

  /** The id typed in the form, or the next free number; the field is emptied ("auto") for the next frame. */
  function frameId (input: HTMLInputElement): string | number {
    const value = input.value.trim() === '' ? nextId : scalar(input.value)
    if (typeof value === 'number' && value >= nextId) nextId = Math.floor(value) + 1
    input.value = ''
    return value
  }

  const subscribeForm = $<HTMLFormElement>('#subscribe')
  const by = subscribeForm.elements.namedItem('by') as HTMLSelectElement
  const showBy = (): void => {
    for (const fieldset of Array.from(subscribeForm.querySelectorAll<HTMLFieldSetElement>('fieldset[data-by]'))) {
      fieldset.hidden = fieldset.dataset.by !== by.value
      fieldset.disabled = fieldset.hidden
    }
  }
  by.addEventListener('change', showBy)
  showBy()

  subscribeForm.addEventListener('submit', (event) => {
    event.preventDefault()
    showError('')
    const field = (name: string): string => (subscribeForm.elements.namedItem(name) as HTMLInputElement).value
    try {
      const frame: Frame = { type: 'subscribe', id: null }
      if (by.value === 'path') {
        frame.path = field('path')
      } else {
        frame.model = field('model')
        frame.action = field('action')
        if (field('lookup_by').trim() !== '') frame.lookup_by = scalar(field('lookup_by'))
        const viewKwargs = json('view_kwargs', field('view_kwargs'))
        if (viewKwargs !== undefined) frame.view_kwargs = viewKwargs
        const queryParams = json('query_params', field('query_params'))
        if (queryParams !== undefined) frame.query_params = queryParams
      }
      if ((subscribeForm.elements.namedItem('snapshot') as HTMLInputElement).checked) frame.snapshot = true
      frame.id = frameId(subscribeForm.elements.namedItem('id') as HTMLInputElement)
      if (send(frame)) {
        subscriptions.set(JSON.stringify(frame.id), { frame, state: 'pending' })
        renderSubscriptions()
      }
    } catch (err) {
      showError((err as Error).message)
    }
  })

  const requestForm = $<HTMLFormElement>('#request')
  requestForm.addEventListener('submit', (event) => {
    event.preventDefault()
    showError('')
    const field = (name: string): string => (requestForm.elements.namedItem(name) as HTMLInputElement).value
    try {
      const frame: Frame = { type: 'request', id: null, method: field('method'), path: field('path') }
      const body = json('body', field('body'))
      if (body !== undefined) frame.body = body
      frame.id = frameId(requestForm.elements.namedItem('id') as HTMLInputElement)
      send(frame)
    } catch (err) {
      showError((err as Error).message)
    }
  })

  const rawForm = $<HTMLFormElement>('#raw')
  rawForm.addEventListener('submit', (event) => {
    event.preventDefault()
    showError('')
    try {
      const frame = json('frame', (rawForm.elements.namedItem('frame') as HTMLTextAreaElement).value)
      if (frame === null || typeof frame !== 'object' || Array.isArray(frame)) throw new Error('a frame is a JSON object')
      send(frame as Frame)
    } catch (err) {
      showError((err as Error).message)
    }
  })

  filter.addEventListener('input', applyFilter)
  showSent.addEventListener('change', applyFilter)
  $<HTMLButtonElement>('#clear').addEventListener('click', () => { log.replaceChildren() })
  $<HTMLButtonElement>('#reconnect').addEventListener('click', connect)

  // --- routes and counters, polled
  function useRoute (route: Route): void {
    by.value = 'model'
    showBy()
    ;(subscribeForm.elements.namedItem('model') as HTMLInputElement).value = route.model
    ;(subscribeForm.elements.namedItem('action') as HTMLSelectElement).value = route.kind
    ;(subscribeForm.elements.namedItem(route.kind === 'retrieve' ? 'lookup_by' : 'query_params') as HTMLInputElement).focus()
  }

  function renderRoutes (routes: Route[]): void {
    const body = $<HTMLTableSectionElement>('#routes tbody')
    body.replaceChildren(...routes.map((route) => {
      const row = document.createElement('tr')
      row.dataset.route = route.route
      const use = cell('button', 'Use')
      use.title = 'fill the subscribe form with this route'
      use.addEventListener('click', () => { useRoute(route) })
      const action = document.createElement('td')
      action.append(use)
      row.append(cell('td', route.route), cell('td', route.model), cell('td', route.kind), cell('td', route.lookup), cell('td', route.pk),
        cell('td', route.views, 'num'), cell('td', route.subscriptions, 'num'), action)
      return row
    }))
    if (routes.length === 0) {
      const row = document.createElement('tr')
      const empty = cell('td', 'no realtime routes: a GET route needs config.realtime, and must be registered after the plugin')
      empty.setAttribute('colspan', '8')
      row.append(empty)
      body.append(row)
    }
    const models = [...new Set(routes.map((route) => route.model))]
    $<HTMLDataListElement>('#models').replaceChildren(...models.map((model) => { const option = document.createElement('option'); option.value = model; return option }))
  }

  function renderStats (stats: Record<string, number>): void {
    $<HTMLTableElement>('#stats').replaceChildren(...Object.entries(stats).map(([name, value]) => {
      const row = document.createElement('tr')
      row.dataset.stat = name
      row.append(cell('th', name), cell('td', value, 'num'))
      return row
    }))
  }

  let routesShown = ''
  async function refresh (): Promise<void> {
    try {
      const response = await fetch(config.jsonUrl, { cache: 'no-store' })
      if (!response.ok) throw new Error(`${config.jsonUrl} answered ${response.status}`)
      const data = await response.json() as Data
      renderStats(data.stats)
      const routes = JSON.stringify(data.routes)
      if (routes !== routesShown) {
        routesShown = routes
        renderRoutes(data.routes)
      }
      $<HTMLElement>('#poll-error').textContent = ''
    } catch (err) {
      $<HTMLElement>('#poll-error').textContent = `counters: ${(err as Error).message}`
    }
    setTimeout(() => { void refresh() }, 1000)
  }

  renderSubscriptions()
  connect()
  void refresh()
}
/* c8 ignore stop */

export function inspectorPage (config: PageConfig): string {
  // `</script` would end the element early: written `<\/script`, which reads the same in JavaScript
  const script = `(${inspectorScript.toString()})(${JSON.stringify(config)})`.replace(/<\/(script)/gi, '<\\/$1')
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>fastify-rest-live inspector</title><link rel="icon" href="data:,"><style>${style}</style></head>
<body>
<header><h1>fastify-rest-live inspector</h1><span id="status" data-state="connecting">connecting…</span><button id="reconnect" hidden>Reconnect</button></header>
<main>
<section>
  <h2>Realtime routes</h2>
  <table id="routes"><thead><tr><th>route</th><th>model</th><th>kind</th><th>lookup</th><th>pk</th><th>views</th><th>subscriptions</th><th></th></tr></thead><tbody></tbody></table>
  <h2>Subscribe</h2>
  <form id="subscribe">
    <label>id <input type="text" name="id" size="4" placeholder="auto"></label>
    <label>target <select name="by"><option value="model">model + action</option><option value="path">path</option></select></label>
    <fieldset data-by="model">
      <label>model <input type="text" name="model" list="models" required></label>
      <label>action <select name="action"><option>list</option><option>retrieve</option></select></label>
      <label>lookup_by <input type="text" name="lookup_by" size="6"></label>
      <label>view_kwargs <input type="text" name="view_kwargs" placeholder='{"project_id": 7}'></label>
      <label>query_params <input type="text" name="query_params" placeholder='{"done": false}'></label>
    </fieldset>
    <fieldset data-by="path"><label>path <input type="text" name="path" placeholder="/tasks?done=false" required></label></fieldset>
    <label class="inline"><input type="checkbox" name="snapshot" checked> snapshot</label>
    <button>Subscribe</button>
  </form>
  <datalist id="models"></datalist>
  <h2>Open subscriptions</h2>
  <ul id="subscriptions"></ul>
  <h2>Request</h2>
  <form id="request">
    <label>id <input type="text" name="id" size="4" placeholder="auto"></label>
    <label>method <select name="method"><option>GET</option><option>HEAD</option><option>POST</option><option>PUT</option><option>PATCH</option><option>DELETE</option></select></label>
    <label>path <input type="text" name="path" value="/" required></label>
    <label class="wide">body (JSON, optional) <textarea name="body" placeholder='{"title": "from the inspector"}'></textarea></label>
    <button>Send</button>
  </form>
  <details><summary>Any frame</summary>
  <form id="raw"><label class="wide">frame <textarea name="frame">{"type": "subscribe", "id": "raw-1", "path": "/"}</textarea></label><button>Send</button></form>
  </details>
  <p id="form-error" class="error" role="alert"></p>
  <h2>Counters <small>(this node, every second)</small></h2>
  <table id="stats"></table>
  <p id="poll-error" class="error"></p>
</section>
<section>
  <h2>Frames on this page's socket</h2>
  <div class="tools"><input type="search" id="filter" placeholder="filter: any text, e.g. broadcast, CREATED, &quot;id&quot;: 3"><label class="inline"><input type="checkbox" id="show-sent" checked> sent</label><button id="clear">Clear</button></div>
  <ol id="log"></ol>
</section>
</main>
<script type="module">${script}</script>
</body></html>`
}
