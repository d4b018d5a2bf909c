// The dashboard: reads GET /events with fetch() (so the token goes in the
// Authorization header, never in a URL) and keeps the page in step with it.
// Rows are kept by key and updated in place, so focus and screen-reader
// position survive the once-a-second updates.

const TOKEN_KEY = 'balancer.token'
const PLOT_MS = 15 * 60_000
let token = sessionStorage.getItem(TOKEN_KEY)
const history = new Map() // server -> [{t, rps, errorRate}]
const $ = (id) => document.getElementById(id)

function headers() {
  return token === null ? {} : { authorization: `Bearer ${token}` }
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v
    else if (k === 'text') e.textContent = v
    else e.setAttribute(k, v)
  }
  for (const c of children) e.append(c)
  return e
}

function setConn(text, live) {
  const c = $('conn')
  c.textContent = text
  c.className = `conn ${live ? 'live' : 'down'}`
}

// ---- the event stream ----

async function connect() {
  let res
  try {
    res = await fetch('/events', { headers: headers(), cache: 'no-store' })
  } catch {
    return retry('Disconnected; retrying…')
  }
  if (res.status === 401) return askToken(token === null ? '' : 'That token was refused.')
  if (!res.ok || res.body === null) return retry(`Error ${res.status}; retrying…`)
  setConn('Live', true)
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
  let buf = ''
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      buf += value
      let i
      while ((i = buf.indexOf('\n\n')) >= 0) {
        handleFrame(buf.slice(0, i))
        buf = buf.slice(i + 2)
      }
    }
  } catch {
    // the connection dropped: reconnect below
  }
  retry('Disconnected; retrying…')
}

function retry(text) {
  setConn(text, false)
  setTimeout(connect, 1000)
}

function handleFrame(frame) {
  let event = 'message'
  let data = ''
  for (const line of frame.split('\n')) {
    if (line.startsWith('event: ')) event = line.slice(7)
    else if (line.startsWith('data: ')) data += line.slice(6)
  }
  if (data === '') return
  const msg = JSON.parse(data)
  if (event === 'hello') {
    history.clear()
    for (const [server, points] of Object.entries(msg.history)) history.set(server, points)
    $('timeline').replaceChildren()
    for (const entry of msg.timeline) addTimeline(entry)
    if (msg.state !== null) render(msg.state)
  } else if (event === 'state') {
    for (const [server, p] of Object.entries(msg.points)) {
      const h = history.get(server) ?? []
      h.push(p)
      while (h.length > 0 && h[0].t < p.t - PLOT_MS) h.shift()
      history.set(server, h)
    }
    render(msg.state)
  } else if (event === 'timeline') {
    addTimeline(msg)
  }
}

// ---- token ----

function askToken(error) {
  setConn('Needs the admin token', false)
  $('token-error').textContent = error
  const d = $('token-dialog')
  if (!d.open) d.showModal()
  $('token').focus()
}

$('token-form').addEventListener('submit', () => {
  token = $('token').value.trim()
  sessionStorage.setItem(TOKEN_KEY, token)
  $('token').value = ''
  connect()
})

// ---- rendering ----

const fmt = {
  rps: (n) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2)),
  pct: (n) => (n === null ? '–' : `${(n * 100).toFixed(n > 0 && n < 0.01 ? 2 : 1)}%`),
  ms: (n) => (n === null ? '–' : n >= 100 ? `${n.toFixed(0)} ms` : `${n.toFixed(1)} ms`),
  ago: (t) => new Date(t).toLocaleTimeString(),
}

function render(state) {
  $('version').textContent = `Configuration version ${state.configVersion}`
  renderHealth(state)
  const list = $('server-list')
  $('no-servers').hidden = state.servers.length !== 0
  const seen = new Set()
  for (const sv of state.servers) {
    seen.add(sv.server)
    let card = list.querySelector(`section[data-server="${CSS.escape(sv.server)}"]`)
    if (card === null) {
      card = serverCard(sv.server)
      list.append(card)
    }
    updateServer(card, sv)
  }
  for (const card of [...list.children]) if (!seen.has(card.dataset.server)) card.remove()
}

function renderHealth(state) {
  const items = [{ label: `Store (${state.store.name})`, h: state.store }, ...state.discovery.map((d) => ({ label: `Discovery: ${d.name}`, h: d }))]
  const ul = $('health')
  ul.replaceChildren(
    ...items.map(({ label, h }) =>
      el(
        'li',
        {},
        el('strong', { text: label }),
        ' ',
        el('span', { class: h.up ? 'up' : 'down', text: h.up ? 'up' : 'down' }),
        h.since === null ? '' : el('span', { class: 'muted', text: ` since ${fmt.ago(h.since)}` }),
        h.lastError === null ? '' : el('div', { class: 'error', text: `Last error: ${h.lastError}` }),
      ),
    ),
  )
}

function figures(f) {
  const item = (dt, dd, name) => el('div', {}, el('dt', { text: dt }), el('dd', { 'data-fig': name, text: dd }))
  return el('dl', { class: 'figures' }, item('req/s', fmt.rps(f.rps), 'rps'), item('errors', fmt.pct(f.errorRate), 'err'), item('p99', fmt.ms(f.p99Ms), 'p99'))
}

function serverCard(server) {
  const id = `srv-${[...server].map((c) => c.charCodeAt(0).toString(16)).join('')}`
  const card = el('section', { class: 'server', 'data-server': server, 'aria-labelledby': id })
  card.append(
    el('div', { class: 'server-head' }, el('h3', { id, text: `Server ${server}` }), el('div', { 'data-slot': 'figures' })),
    el('p', { class: 'legend', 'aria-hidden': 'true' }, el('span', { class: 'rps', text: 'requests/s' }), el('span', { class: 'err', text: 'error rate' }), el('span', { text: 'last 15 minutes' }), el('span', { 'data-slot': 'peak' })),
    el('div', { 'data-slot': 'plot' }),
    el('div', { 'data-slot': 'routes' }),
  )
  return card
}

function updateServer(card, sv) {
  card.querySelector('[data-slot=figures]').replaceChildren(figures(sv))
  const points = history.get(sv.server) ?? []
  card.querySelector('[data-slot=plot]').replaceChildren(plot(sv.server, points))
  card.querySelector('[data-slot=peak]').textContent = `top of scale: ${fmt.rps(Math.max(1, ...points.map((p) => p.rps)))} req/s, 100% errors`
  const routes = card.querySelector('[data-slot=routes]')
  const seen = new Set()
  for (const r of sv.routes) {
    seen.add(r.id)
    let block = routes.querySelector(`div[data-route="${CSS.escape(r.id)}"]`)
    if (block === null) {
      block = routeBlock(r)
      routes.append(block)
    }
    updateRoute(block, r)
  }
  for (const b of [...routes.children]) if (!seen.has(b.dataset.route)) b.remove()
}

function routeBlock(r) {
  const block = el('div', { 'data-route': r.id })
  const table = el(
    'table',
    {},
    el('caption'),
    el(
      'thead',
      {},
      el(
        'tr',
        {},
        ...['Upstream', 'Origin', 'State', 'req/s', 'Errors', 'p99', 'Active', 'Action'].map((h, i) => el('th', { scope: 'col', class: i >= 3 && i <= 6 ? 'num' : '', text: h })),
      ),
    ),
    el('tbody'),
  )
  block.append(table)
  return block
}

function updateRoute(block, r) {
  block.querySelector('caption').replaceChildren(
    el('strong', { text: `Route ${r.name}` }),
    el('span', { class: 'muted', text: ` · ${fmt.rps(r.rps)} req/s, ${fmt.pct(r.errorRate)} errors, p99 ${fmt.ms(r.p99Ms)} over the last minute` }),
  )
  const body = block.querySelector('tbody')
  const seen = new Set()
  for (const u of r.upstreams) {
    seen.add(u.key)
    let row = body.querySelector(`tr[data-key="${CSS.escape(u.key)}"]`)
    if (row === null) {
      row = upstreamRow(u)
      body.append(row)
    }
    const cell = (name) => row.querySelector(`[data-cell=${name}]`)
    cell('origin').textContent = u.origin
    const st = cell('state')
    st.textContent = u.state
    st.className = `state state-${u.state}`
    cell('rps').textContent = fmt.rps(u.rps)
    cell('err').textContent = fmt.pct(u.errorRate)
    cell('p99').textContent = fmt.ms(u.p99Ms)
    cell('active').textContent = String(u.active)
    const b = row.querySelector('button')
    const draining = u.state === 'draining'
    b.textContent = draining ? 'Undrain' : 'Drain'
    b.setAttribute('aria-label', `${draining ? 'Undrain' : 'Drain'} ${u.key}`)
    b.dataset.drained = String(draining)
  }
  for (const row of [...body.children]) if (!seen.has(row.dataset.key)) row.remove()
}

function upstreamRow(u) {
  const td = (label, name, num = false) => el('td', { 'data-label': label, 'data-cell': name, class: num ? 'num' : '' })
  const button = el('button', { type: 'button' })
  button.addEventListener('click', () => drain(u.key, button.dataset.drained !== 'true', button))
  return el(
    'tr',
    { 'data-key': u.key },
    el('td', { 'data-label': 'Upstream', text: u.key }),
    td('Origin', 'origin'),
    td('State', 'state'),
    td('req/s', 'rps', true),
    td('Errors', 'err', true),
    td('p99', 'p99', true),
    td('Active', 'active', true),
    el('td', { 'data-label': 'Action' }, button),
  )
}

/** `host:port` -> the API's `{target}-{port}` (IPv6 without its brackets). */
function member(key) {
  const i = key.lastIndexOf(':')
  return `${key.slice(0, i).replace(/^\[|\]$/g, '')}-${key.slice(i + 1)}`
}

async function drain(key, on, button) {
  button.disabled = true
  try {
    const res = await fetch(`/upstream/${encodeURIComponent(member(key))}/drain`, { method: on ? 'PUT' : 'DELETE', headers: headers() })
    if (res.status === 401) return askToken('That token was refused.')
    if (!res.ok) {
      const body = await res.json().catch(() => ({ message: res.statusText }))
      addTimeline({ at: Date.now(), kind: 'drain', level: 'error', text: `${on ? 'Drain' : 'Undrain'} ${key} failed: ${body.message}` })
    }
  } finally {
    button.disabled = false
  }
}

function addTimeline(entry) {
  const ol = $('timeline')
  ol.prepend(el('li', { class: entry.level }, el('time', { datetime: new Date(entry.at).toISOString(), text: fmt.ago(entry.at) }), el('span', { text: `${entry.kind}: ${entry.text}` })))
  while (ol.children.length > 200) ol.lastChild.remove()
}

/** Request rate (left scale) and error rate (right scale, 0-100%) of the last 15 minutes, as SVG. */
function plot(server, points) {
  const W = 600
  const H = 120
  const P = 4
  const ns = 'http://www.w3.org/2000/svg'
  const svg = document.createElementNS(ns, 'svg')
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`)
  svg.setAttribute('preserveAspectRatio', 'none')
  svg.setAttribute('class', 'plot')
  svg.setAttribute('role', 'img')
  const now = points.length === 0 ? Date.now() : points[points.length - 1].t
  const peak = Math.max(1, ...points.map((p) => p.rps))
  const last = points[points.length - 1]
  svg.setAttribute(
    'aria-label',
    `Server ${server}, last 15 minutes: ${last === undefined ? 'no data yet' : `now ${fmt.rps(last.rps)} requests per second and ${fmt.pct(last.errorRate)} errors`}, peak ${fmt.rps(peak)} requests per second`,
  )
  const x = (t) => P + ((W - 2 * P) * (t - (now - PLOT_MS))) / PLOT_MS
  const line = (cls, y) => {
    const pl = document.createElementNS(ns, 'polyline')
    pl.setAttribute('class', cls)
    pl.setAttribute('vector-effect', 'non-scaling-stroke')
    pl.setAttribute('points', points.map((p) => `${x(p.t).toFixed(1)},${y(p).toFixed(1)}`).join(' '))
    return pl
  }
  for (const f of [0, 0.5, 1]) {
    const g = document.createElementNS(ns, 'line')
    g.setAttribute('class', 'grid')
    g.setAttribute('x1', '0')
    g.setAttribute('x2', String(W))
    g.setAttribute('y1', String(P + (H - 2 * P) * f))
    g.setAttribute('y2', String(P + (H - 2 * P) * f))
    g.setAttribute('vector-effect', 'non-scaling-stroke')
    svg.append(g)
  }
  svg.append(line('rps', (p) => H - P - ((H - 2 * P) * p.rps) / peak), line('err', (p) => H - P - (H - 2 * P) * p.errorRate))
  return svg
}

// Without a saved token, try none first: an API on loopback may need none; a 401 asks for it.
connect()
