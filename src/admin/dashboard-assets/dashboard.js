// certgate dashboard: polls the admin JSON endpoints (/overview, /certs, /revocations) and
// renders them. Certificate fields are chosen by whoever made the certificate, so every value
// goes into the page as text (textContent, createTextNode, SVG <title> text), never as markup.
// No dependencies; served under Content-Security-Policy: default-src 'self'.

'use strict';

const POLL_MS = 5000;
const PAGE_SIZE = 50;
const DAY_MS = 86400000;
const TOKEN_KEY = 'certgate-admin-token';
const SVG_NS = 'http://www.w3.org/2000/svg';

const state = { q: '', sort: 'notAfter', order: 'asc', offset: 0, timer: undefined, warnDays: [30, 7, 1], revoked: { fps: new Set(), serials: new Set() } };

// --- DOM helpers: text only ------------------------------------------------------------------

function $(id) {
  return document.getElementById(id);
}

/** An element with text children; `props` sets className, title and data-* only. */
function el(tag, props, ...children) {
  const e = document.createElement(tag);
  if (props) {
    if (props.className) e.className = props.className;
    if (props.title) e.title = props.title;
    if (props.data) for (const [k, v] of Object.entries(props.data)) e.dataset[k] = String(v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? '' : String(c)));
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function dateOf(iso) {
  return iso ? iso.slice(0, 16).replace('T', ' ') : '–';
}

function baseName(path) {
  return path ? path.split(/[\\/]/).pop() : '';
}

function shortHex(hex) {
  return hex && hex.length > 16 ? hex.slice(0, 16) + '…' : hex || '';
}

function daysText(d) {
  return d == null ? '–' : String(d);
}

/** 0 for the smallest threshold (most urgent), 1 for the next...; undefined outside all. */
function warnRank(daysLeft) {
  const asc = [...state.warnDays].sort((a, b) => a - b);
  const i = asc.findIndex((t) => daysLeft <= t);
  return i < 0 ? undefined : i;
}

function severityClass(daysLeft) {
  if (daysLeft == null) return '';
  if (daysLeft < 0) return 'expired';
  const rank = warnRank(daysLeft);
  return rank === undefined ? '' : 'expiring warn-' + Math.min(rank, 2);
}

function rows(tbodyParent, list, render, empty) {
  const tbody = tbodyParent.tBodies[0];
  const out = list.map(render);
  if (out.length === 0) out.push(el('tr', { className: 'empty' }, el('td', null, empty)));
  if (out.length === 1 && out[0].className === 'empty') out[0].firstChild.colSpan = tbodyParent.tHead.rows[0].cells.length;
  tbody.replaceChildren(...out);
}

// --- the admin API ---------------------------------------------------------------------------

class AuthNeeded extends Error {}

async function api(path) {
  const headers = { accept: 'application/json' };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.authorization = 'Bearer ' + token;
  const res = await fetch(path, { headers, credentials: 'same-origin', cache: 'no-store' });
  const body = await res.json().catch(() => undefined);
  if (res.status === 401 || res.status === 403) throw new AuthNeeded((body && body.error && body.error.message) || 'the admin API needs credentials');
  if (!res.ok) throw new Error(path + ': ' + ((body && body.error && body.error.message) || res.status));
  return body;
}

function certsPath() {
  const p = new URLSearchParams({ sort: state.sort, order: state.order, offset: String(state.offset), limit: String(PAGE_SIZE) });
  if (state.q) p.set('q', state.q);
  return '/certs?' + p.toString();
}

async function refresh() {
  clearTimeout(state.timer);
  try {
    const [overview, certs, revocations] = await Promise.all([api('/overview'), api(certsPath()), api('/revocations')]);
    $('login').hidden = true;
    $('problem').hidden = true;
    state.warnDays = overview.expiry.warnDays;
    renderHeader(overview);
    renderRevocations(revocations);
    renderTimeline(overview);
    renderClients(certs);
    renderOwn(certs, revocations, overview);
    renderRefusals(overview.refusals);
    document.body.dataset.loaded = 'true';
  } catch (err) {
    if (err instanceof AuthNeeded) {
      $('login-reason').textContent = err.message;
      $('login').hidden = false;
    } else {
      $('problem').textContent = 'Cannot refresh: ' + err.message;
      $('problem').hidden = false;
    }
  }
  state.timer = setTimeout(refresh, POLL_MS);
}

// --- sections --------------------------------------------------------------------------------

function renderHeader(o) {
  $('generation').textContent = String(o.generation);
  $('store').textContent = o.store.kind + ' (' + o.store.state + ')' + (o.store.detail ? ': ' + o.store.detail : '');
  $('store').className = o.store.state === 'ok' ? '' : 'bad';
  const inv = o.inventory;
  $('inventory').textContent = inv.total + ' seen, ' + inv.expiring + ' expiring, ' + inv.expired + ' expired';
  $('updated').textContent = new Date(o.generatedAt).toLocaleTimeString();
}

const LANES = ['server', 'ca', 'crl', 'monitor', 'client'];
const LANE_LABELS = { server: 'Server', ca: 'CAs', crl: 'CRLs', monitor: 'Monitored', client: 'Clients' };

function renderTimeline(o) {
  const t = o.timeline;
  const now = Date.parse(o.generatedAt);
  const from = Date.parse(t.from);
  const to = Date.parse(t.to);
  const W = 1000;
  const left = 90;
  const right = 20;
  const laneH = 34;
  const top = 24;
  const H = top + laneH * LANES.length + 26;
  const x = (ms) => left + ((Math.min(Math.max(ms, from), to) - from) / (to - from)) * (W - left - right);
  const root = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, width: '100%', class: 'timeline' });

  // Warning bands, widest first so that narrower (more urgent) ones are drawn on top.
  const desc = [...state.warnDays].sort((a, b) => b - a);
  desc.forEach((d, i) => {
    const rank = desc.length - 1 - i;
    const x0 = x(now);
    const band = svg('rect', { x: x0, y: top, width: Math.max(0, x(now + d * DAY_MS) - x0), height: laneH * LANES.length, class: 'band warn-' + Math.min(rank, 2), 'data-threshold': d });
    band.append(svg('title', {}, 'within ' + d + ' days'));
    root.append(band);
    // A narrow band gets its label beside it rather than over the today line.
    const narrow = x(now + d * DAY_MS) - x0 < 24;
    root.append(svg('text', { x: x(now + d * DAY_MS) + (narrow ? 3 : -3), y: top - 6, class: 'band-label', 'text-anchor': narrow ? 'start' : 'end' }, d + ' d'));
  });
  root.append(svg('rect', { x: left, y: top, width: Math.max(0, x(now) - left), height: laneH * LANES.length, class: 'past' }));

  LANES.forEach((lane, i) => {
    const y = top + laneH * i;
    root.append(svg('line', { x1: left, x2: W - right, y1: y + laneH, y2: y + laneH, class: 'lane' }));
    root.append(svg('text', { x: left - 8, y: y + laneH / 2 + 4, 'text-anchor': 'end', class: 'lane-label' }, LANE_LABELS[lane]));
  });
  for (let d = 0; d <= 90; d += 10) {
    const xd = x(now + d * DAY_MS);
    root.append(svg('line', { x1: xd, x2: xd, y1: top + laneH * LANES.length, y2: top + laneH * LANES.length + 5, class: 'tick' }));
    root.append(svg('text', { x: xd, y: H - 6, 'text-anchor': 'middle', class: 'tick-label' }, d === 0 ? '' : '+' + d + ' d'));
  }
  const xt = x(now);
  root.append(svg('line', { x1: xt, x2: xt, y1: top - 14, y2: top + laneH * LANES.length, class: 'today' }));
  root.append(svg('text', { x: xt - 4, y: top - 6, class: 'today-label', 'text-anchor': 'end' }, 'today'));

  // Markers: within a lane, close ones step down a little so that each stays visible.
  const lastX = {};
  const step = {};
  for (const item of t.items) {
    const lane = LANES.includes(item.role) ? item.role : 'monitor';
    const ms = Date.parse(item.notAfter);
    const cx = x(ms);
    step[lane] = lastX[lane] !== undefined && cx - lastX[lane] < 6 ? (step[lane] + 1) % 4 : 0;
    lastX[lane] = cx;
    const cy = top + laneH * LANES.indexOf(lane) + 9 + step[lane] * 5;
    const g = svg('g', { class: 'mark ' + (severityClass(item.daysLeft) || 'ok') + ' role-' + lane, 'data-days': item.daysLeft, 'data-fingerprint': item.fingerprint || '' });
    g.append(svg('title', {}, item.role + ': ' + item.subject + '\nnot after ' + dateOf(item.notAfter) + ' (' + item.daysLeft + ' days)' + (item.source ? '\n' + item.source : '')));
    g.append(svg('circle', { cx, cy, r: 5 }));
    root.append(g);
  }
  $('timeline').replaceChildren(root);
  const outside = t.items.filter((i) => Date.parse(i.notAfter) < from).length;
  const notes = [];
  if (outside > 0) notes.push(outside + ' expired more than ' + Math.round((now - from) / DAY_MS) + ' days ago (drawn at the left edge)');
  if (t.clientsNotDrawn > 0) notes.push(t.clientsNotDrawn + ' more client certificates expire within 90 days (the table lists them all)');
  $('timeline-note').textContent = notes.join('; ');
}

function isRevoked(c) {
  return c.lastDecision === 'certificate_revoked' || state.revoked.fps.has(c.fingerprint) || state.revoked.serials.has(c.serial + '|' + c.issuer) || state.revoked.serials.has(c.serial + '|');
}

function renderClients(certs) {
  const list = certs.clients;
  const page = certs.page || { offset: 0, limit: list.length, matched: list.length, total: list.length };
  const withInstances = list.some((c) => Array.isArray(c.instances));
  for (const th of document.querySelectorAll('#clients .instances')) th.hidden = !withInstances;
  rows($('clients'), list, (c) => {
    const revoked = isRevoked(c);
    const cls = [severityClass(c.daysLeft), revoked ? 'revoked' : ''].filter(Boolean).join(' ');
    const tr = el(
      'tr',
      { className: cls, data: { fingerprint: c.fingerprint } },
      el('td', { className: 'subject', title: 'sha256 ' + c.fingerprint }, c.subject),
      el('td', { className: 'mono' }, c.spiffe || ''),
      el('td', null, c.issuer),
      el('td', { className: 'mono' }, c.serial),
      el('td', { className: 'nowrap' }, dateOf(c.notAfter)),
      el('td', { className: 'days num' }, daysText(c.daysLeft), revoked ? el('span', { className: 'tag' }, 'revoked') : ''),
      el('td', { className: 'nowrap' }, dateOf(c.firstSeen)),
      el('td', { className: 'nowrap' }, dateOf(c.lastSeen)),
      el('td', { className: 'num' }, String(c.requests)),
      el('td', null, c.routes.join(', ')),
    );
    if (withInstances) tr.append(el('td', null, (c.instances || []).join(', ')));
    return tr;
  }, state.q ? 'No client certificate matches the filter.' : 'No client certificate seen yet.');
  const last = Math.min(page.offset + list.length, page.matched);
  $('page-info').textContent = page.matched === 0 ? '' : page.offset + 1 + '–' + last + ' of ' + page.matched;
  $('clients-count').textContent = page.matched === page.total ? page.total + ' certificates' : page.matched + ' of ' + page.total + ' certificates match';
  $('prev').disabled = page.offset === 0;
  $('next').disabled = last >= page.matched;
  for (const th of document.querySelectorAll('#clients th[data-sort]')) {
    if (th.dataset.sort === state.sort) th.setAttribute('aria-sort', state.order === 'asc' ? 'ascending' : 'descending');
    else th.removeAttribute('aria-sort');
  }
}

function renderOwn(certs, revocations, o) {
  const own = [...certs.server, ...certs.cas];
  rows($('own'), own, (c) =>
    el('tr', { className: severityClass(c.daysLeft) },
      el('td', null, c.role), el('td', null, c.subject), el('td', { className: 'mono', title: c.serial }, shortHex(c.serial)),
      el('td', { className: 'nowrap' }, dateOf(c.notAfter)), el('td', { className: 'num' }, daysText(c.daysLeft)), el('td', { className: 'mono', title: c.source || '' }, baseName(c.source))),
  'No certificate loaded.');
  const crls = (revocations.sources && revocations.sources.crls) || [];
  const now = Date.parse(o.generatedAt);
  rows($('crls'), crls, (c) =>
    el('tr', { className: c.nextUpdate && Date.parse(c.nextUpdate) < now ? 'expired' : '' },
      el('td', null, c.issuer), el('td', { className: 'mono', title: c.origin }, baseName(c.origin)), el('td', { className: 'nowrap' }, dateOf(c.thisUpdate)),
      el('td', { className: 'nowrap' }, c.nextUpdate ? dateOf(c.nextUpdate) : 'none'), el('td', { className: 'num' }, String(c.entries))),
  'No CRL configured.');
  const ocsp = o.ocsp;
  const staple = ocsp.staple ? 'stapled response ' + ocsp.staple.ageSeconds + ' s old' : 'no stapled response';
  $('ocsp').textContent = (ocsp.enabled ? 'Client checks on: ' + ocsp.cached + ' of at most ' + ocsp.cacheSize + ' answers cached' : 'Client checks off') + '; server certificate: ' + staple + '.';
  rows($('monitors'), o.monitors, (m) =>
    el('tr', { className: m.healthy === false ? 'expired' : '' },
      el('td', { className: 'mono' }, m.address), el('td', null, m.healthy == null ? 'not scanned yet' : m.healthy ? 'yes' : 'no'),
      el('td', { className: 'nowrap' }, dateOf(m.scannedAt)), el('td', { className: 'num' }, daysText(m.daysLeft)), el('td', null, m.problems.join('; '))),
  'No monitored endpoint.');
}

function renderRevocations(r) {
  const list = r.revocations;
  state.revoked = { fps: new Set(list.filter((e) => e.fingerprint).map((e) => e.fingerprint)), serials: new Set(list.filter((e) => e.serial).map((e) => e.serial + '|' + (e.issuer || ''))) };
  rows($('revocations'), list, (e) =>
    el('tr', null,
      el('td', { className: 'mono' }, e.serial || (e.fingerprint ? 'sha256 ' + e.fingerprint.slice(0, 16) + '…' : '')), el('td', null, e.issuer || 'any'),
      el('td', null, e.reason), el('td', null, e.actor), el('td', { className: 'nowrap' }, dateOf(e.createdAt))),
  'No local revocation.');
  const crls = (r.sources && r.sources.crls) || [];
  const entries = crls.reduce((n, c) => n + c.entries, 0);
  $('revocation-counts').textContent = list.length + ' in the local list; ' + entries + ' serials listed in ' + crls.length + ' CRL' + (crls.length === 1 ? '' : 's') + '.';
}

function renderRefusals(r) {
  const codes = Object.entries(r.byCode);
  const max = codes.reduce((m, [, n]) => Math.max(m, n), 0);
  rows($('refusals'), codes, ([code, n]) => {
    const bar = el('span', { className: 'bar' });
    bar.style.width = Math.round((n / max) * 100) + '%';
    return el('tr', { data: { code } }, el('td', { className: 'code' }, code), el('td', { className: 'num' }, String(n)), el('td', { className: 'bar-cell' }, bar));
  }, 'No refusal in the last hour.');
  $('refusals-total').textContent = r.total + ' in the last ' + r.windowMinutes + ' minutes.';
}

// --- controls --------------------------------------------------------------------------------

function start() {
  let debounce;
  $('filter').addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      state.q = $('filter').value.trim();
      state.offset = 0;
      refresh();
    }, 200);
  });
  for (const th of document.querySelectorAll('#clients th[data-sort]')) {
    th.tabIndex = 0;
    const sortBy = () => {
      if (state.sort === th.dataset.sort) state.order = state.order === 'asc' ? 'desc' : 'asc';
      else {
        state.sort = th.dataset.sort;
        state.order = 'asc';
      }
      state.offset = 0;
      refresh();
    };
    th.addEventListener('click', sortBy);
    th.addEventListener('keydown', (e) => (e.key === 'Enter' || e.key === ' ') && (e.preventDefault(), sortBy()));
  }
  $('prev').addEventListener('click', () => {
    state.offset = Math.max(0, state.offset - PAGE_SIZE);
    refresh();
  });
  $('next').addEventListener('click', () => {
    state.offset += PAGE_SIZE;
    refresh();
  });
  $('login').addEventListener('submit', (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $('token').value.trim());
    $('token').value = '';
    refresh();
  });
  refresh();
}

document.addEventListener('DOMContentLoaded', start);
