// The Converge web console: operators see and steer the fleet, people browse, restore and
// resolve. Every call is a management API call through /api/v1/<Method> (docs/console.md).
import { html, render, useState, useEffect, useCallback } from './vendor/htm-preact-standalone.module.js';

let csrf = '';

async function call(method, body = {}) {
  const r = await fetch(`/api/v1/${method}`, {
    method: 'POST', credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
    body: JSON.stringify(body),
  });
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(j.error || `HTTP ${r.status}`);
  return j;
}

const num = (v) => Number(v || 0);
function bytes(v) {
  let n = num(v);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}
function ago(ms) {
  ms = num(ms);
  if (!ms) return 'never';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(ms).toLocaleString();
}
const when = (ms) => (num(ms) ? new Date(num(ms)).toLocaleString() : '');
const stateName = (s) => String(s || '').replace('DEVICE_STATE_', '').toLowerCase().replace('_', ' ');

// useCall runs `fn` now, again when `deps` change, and every `every` ms if given.
function useCall(fn, deps, every) {
  const [state, setState] = useState({ data: null, error: null });
  const load = useCallback(() => fn().then((data) => setState({ data, error: null }),
    (e) => setState((s) => ({ data: s.data, error: e.message }))), deps);
  useEffect(() => {
    load();
    if (!every) return undefined;
    const t = setInterval(load, every);
    return () => clearInterval(t);
  }, [load]);
  return [state, load];
}

const ErrorText = ({ text }) => (text ? html`<p class="error" role="alert">${text}</p>` : null);

function Table({ caption, head, rows, empty }) {
  if (!rows.length) return html`<p class="muted">${empty}</p>`;
  return html`<div class="table-wrap" tabindex="0" role="region" aria-label=${caption}><table>
    <caption>${caption}</caption>
    <thead><tr>${head.map((h) => html`<th scope="col" class=${h.num ? 'num' : ''}>${h.label || h}</th>`)}</tr></thead>
    <tbody>${rows}</tbody></table></div>`;
}

function SignIn({ onIn }) {
  const [error, setError] = useState('');
  async function submit(e, body) {
    e.preventDefault();
    setError('');
    const r = await fetch('/api/session', { method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    const j = await r.json().catch(() => ({}));
    if (!r.ok) { setError(j.error || `HTTP ${r.status}`); return; }
    onIn(j);
  }
  const form = (e) => Object.fromEntries(new FormData(e.target));
  return html`<main><h1>Sign in to Converge</h1><${ErrorText} text=${error} />
    <div class="signin">
      <section aria-labelledby="user-h"><h2 id="user-h">Your account</h2>
        <form id="user-signin" onSubmit=${(e) => submit(e, form(e))}>
          <label for="user_id">User</label><input id="user_id" name="user_id" autocomplete="username" required />
          <label for="password">Password</label>
          <input id="password" name="password" type="password" autocomplete="current-password" required />
          <p><button type="submit">Sign in</button></p>
        </form></section>
      <section aria-labelledby="op-h"><h2 id="op-h">Operator</h2>
        <form id="operator-signin" onSubmit=${(e) => submit(e, form(e))}>
          <label for="operator_token">Operator token</label>
          <input id="operator_token" name="operator_token" type="password" autocomplete="off" required />
          <p><button type="submit">Sign in as operator</button></p>
        </form></section>
    </div></main>`;
}

// LagChart: one namespace's lag over the last hour, as an SVG line chart (no library).
function LagChart({ series }) {
  const pts = series.points;
  const ns = series.namespace_id;
  if (pts.length < 2) return html`<p class="muted">${ns}: collecting lag samples…</p>`;
  const W = 600; const H = 170; const L = 44; const R = 44; const T = 12; const B = 26;
  const t0 = num(pts[0].at_unix_ms); const t1 = num(pts[pts.length - 1].at_unix_ms);
  const maxLag = Math.max(1, ...pts.map((p) => p.max_lag_seconds));
  const maxCommits = Math.max(1, ...pts.map((p) => num(p.lag_commits)));
  const x = (t) => L + ((W - L - R) * (num(t) - t0)) / Math.max(1, t1 - t0);
  const y = (v, m) => H - B - ((H - T - B) * v) / m;
  const line = (f, m) => pts.map((p) => `${x(p.at_unix_ms).toFixed(1)},${y(f(p), m).toFixed(1)}`).join(' ');
  const last = pts[pts.length - 1];
  const minutes = Math.max(1, Math.round((t1 - t0) / 60000));
  const peakLag = Math.max(...pts.map((p) => p.max_lag_seconds));
  const peakCommits = Math.max(...pts.map((p) => num(p.lag_commits)));
  const summary = `${ns}: the slowest device is ${last.max_lag_seconds.toFixed(1)} s behind now (at most ${peakLag.toFixed(1)} s in the last ${minutes} min); ${last.lag_commits} commits still to apply (at most ${peakCommits}).`;
  return html`<figure class="chart"><figcaption>${summary}</figcaption>
    <svg viewBox=${`0 0 ${W} ${H}`} role="img" aria-label=${summary}>
      <line x1=${L} y1=${H - B} x2=${W - R} y2=${H - B} class="axis" />
      <line x1=${L} y1=${T} x2=${L} y2=${H - B} class="axis" />
      <text x=${L - 6} y=${T + 10} class="tick" text-anchor="end">${maxLag.toFixed(0)} s</text>
      <text x=${L - 6} y=${H - B} class="tick" text-anchor="end">0</text>
      <text x=${W - R + 6} y=${T + 10} class="tick">${maxCommits}</text>
      <text x=${L} y=${H - 6} class="tick">${minutes} min ago</text>
      <text x=${W - R} y=${H - 6} class="tick" text-anchor="end">now</text>
      <polyline points=${line((p) => p.max_lag_seconds, maxLag)} class="lag" />
      <polyline points=${line((p) => num(p.lag_commits), maxCommits)} class="commits" />
    </svg>
    <p class="legend"><span class="key lag"></span> slowest device's lag (s, left) <span class="key commits"></span> commits to apply (right)</p></figure>`;
}

function LagCharts() {
  const [{ data, error }] = useCall(() => call('GetLagHistory', {}), [], 15000);
  // The namespaces with devices, the most behind first.
  const peak = (s) => Math.max(0, ...s.points.map((p) => p.max_lag_seconds));
  const list = ((data && data.namespaces) || []).filter((s) => s.points.some((p) => p.devices > 0))
    .sort((a, b) => peak(b) - peak(a)).slice(0, 6);
  return html`<h2>Lag over the last hour</h2><${ErrorText} text=${error} />
    ${list.length ? html`<div class="charts">${list.map((s) => html`<${LagChart} series=${s} />`)}</div>`
    : html`<p class="muted">No samples yet (one every 15 s).</p>`}`;
}

function Fleet({ session }) {
  const op = session.kind === 'operator';
  const [{ data, error }, reload] = useCall(() => call('ListDevices', {}), [], 5000);
  const [msg, setMsg] = useState('');
  async function revoke(d, wipe) {
    if (!confirm(`${wipe ? 'Revoke and wipe' : 'Revoke'} device ${d.name}?`)) return;
    try { await call('RevokeDevice', { device_id: d.device_id, wipe }); setMsg(`Device ${d.name} revoked.`); reload(); }
    catch (e) { setMsg(e.message); }
  }
  const devices = (data && data.devices) || [];
  const active = devices.filter((d) => d.state === 'DEVICE_STATE_ACTIVE').length;
  const behind = devices.filter((d) => d.namespaces.some((n) => num(n.lag_commits) > 0)).length;
  return html`<main><h1>${op ? 'Fleet' : 'My devices'}</h1><${ErrorText} text=${error || (data && data.store_error)} />
    ${msg && html`<p class="notice" role="status">${msg}</p>`}
    <div class="cards">
      <div class="card"><div class="n">${devices.length}</div><div class="l">devices</div></div>
      <div class="card"><div class="n">${active}</div><div class="l">active</div></div>
      <div class="card"><div class="n">${behind}</div><div class="l">behind in a namespace</div></div>
    </div>
    <${Table} caption="Devices; refreshes every 5 s" empty="No devices yet."
      head=${['Device', 'User', 'State', 'Last seen', 'Version', 'Namespaces (lag)', ...(op ? ['Actions'] : [])]}
      rows=${devices.map((d) => html`<tr>
        <td>${d.name}<br /><small class="muted">${d.device_id}</small></td><td>${d.user_id}</td>
        <td class=${d.state === 'DEVICE_STATE_ACTIVE' ? 'state-ok' : 'state-bad'}>${stateName(d.state)}</td>
        <td>${ago(d.last_seen_unix_ms)}</td><td>${d.software_version || '—'}</td>
        <td>${d.namespaces.map((n) => html`<div>${n.namespace_id}: ${num(n.lag_commits) === 0
          ? html`<span class="state-ok">in sync</span>`
          : html`<span class="state-warn">${n.lag_commits} commits, ${bytes(n.lag_bytes)}, ${Math.round(n.lag_seconds)} s</span>`}
          ${n.pins_watermark ? ' · pins the watermark' : ''}</div>`)}</td>
        ${op && html`<td><div class="actions">${d.state === 'DEVICE_STATE_ACTIVE' && html`
          <button class="danger" onClick=${() => revoke(d, false)} aria-label=${`Revoke ${d.name}`}>Revoke</button>
          <button class="secondary" onClick=${() => revoke(d, true)} aria-label=${`Revoke and wipe ${d.name}`}>Wipe</button>`}
        </div></td>`}</tr>`)} />
    ${op && html`<${LagCharts} />`}
  </main>`;
}

function Namespaces({ go }) {
  const [{ data, error }] = useCall(() => call('ListNamespaces', {}), []);
  const list = (data && data.namespaces) || [];
  return html`<main><h1>Namespaces</h1><${ErrorText} text=${error} />
    <${Table} caption="Namespaces you can see" empty="No namespaces." head=${['Namespace', 'Owner', 'Shared with', 'Encrypted', 'Created']}
      rows=${list.map((n) => html`<tr>
        <td><a href=${`#/namespace/${encodeURIComponent(n.namespace_id)}`}>${n.namespace_id}</a></td>
        <td>${n.owner_user_id}</td><td>${n.shared_with_user_ids.join(', ') || '—'}</td>
        <td>${n.options && n.options.encrypted ? 'end to end' : 'no'}</td><td>${when(n.created_at_unix_ms)}</td></tr>`)} />
  </main>`;
}

function NamespaceStatus({ ns }) {
  const [{ data, error }] = useCall(() => call('GetNamespaceStatus', { namespace_id: ns }), [ns], 5000);
  const s = data;
  const pinned = s ? s.devices.filter((d) => d.pins_watermark).map((d) => d.device_name || d.device_id) : [];
  return html`<main><h1>Namespace ${ns}</h1><${ErrorText} text=${error} />
    <p><a href=${`#/browse/${encodeURIComponent(ns)}`}>Browse files</a> · <a href=${`#/conflicts/${encodeURIComponent(ns)}`}>Conflicts</a></p>
    ${s && html`<div class="cards">
      <div class="card"><div class="n">${s.files}</div><div class="l">files</div></div>
      <div class="card"><div class="n">${bytes(s.bytes)}</div><div class="l">bytes</div></div>
      <div class="card"><div class="n">${num(s.dedup_ratio).toFixed(2)}×</div><div class="l">dedup ratio</div></div>
      <div class="card"><div class="n">${s.head_seq}</div><div class="l">head seq</div></div>
      <div class="card"><div class="n">${s.watermark}</div><div class="l">watermark (pinned by ${pinned.join(', ') || 'nobody'})</div></div>
      <div class="card"><div class="n">${s.conflicts}</div><div class="l">open conflicts</div></div>
    </div>
    <${Table} caption="Devices in this namespace" empty="No devices." head=${['Device', 'Acked', 'Lag', 'Blocked']}
      rows=${s.devices.map((d) => html`<tr><td>${d.device_name || d.device_id}${d.evicted ? ' (evicted)' : ''}</td>
        <td class="num">${d.acked_seq}</td>
        <td>${num(d.lag_commits) === 0 ? html`<span class="state-ok">in sync</span>` : `${d.lag_commits} commits, ${bytes(d.lag_bytes)}`}</td>
        <td>${num(d.blocked_count) ? d.blocked.join('; ') : '—'}</td></tr>`)} />`}
  </main>`;
}

function Deletes() {
  const [{ data, error }, reload] = useCall(() => call('ListPendingDeletes', {}), [], 5000);
  const [msg, setMsg] = useState('');
  async function resolve(d, approve) {
    try {
      await call('ResolvePendingDelete', { namespace_id: d.namespace_id, id: d.id, approve });
      setMsg(`${approve ? 'Approved' : 'Rejected'}: ${d.deletes} deletes in ${d.namespace_id}.`);
      reload();
    } catch (e) { setMsg(e.message); }
  }
  const list = (data && data.deletes) || [];
  return html`<main><h1>Held mass deletes</h1><${ErrorText} text=${error} />
    ${msg && html`<p class="notice" role="status">${msg}</p>`}
    <${Table} caption="Deletes held until an operator decides" empty="No deletes are held."
      head=${['Namespace', 'Device', 'Deletes', 'Of live files', 'Folders it empties', 'Examples', 'Held since', 'Decide']}
      rows=${list.map((d) => html`<tr><td>${d.namespace_id}</td><td>${d.device_name || d.device_id}</td>
        <td class="num">${d.deletes}</td><td class="num">${d.live_entries}</td>
        <td>${d.top_folders.map((f) => html`<div>${f.path || '(top)'}: ${f.files}</div>`)}</td>
        <td>${d.sample_paths.slice(0, 5).map((p) => html`<div><code>${p}</code></div>`)}</td>
        <td>${when(d.created_at_unix_ms)}</td>
        <td><div class="actions"><button onClick=${() => resolve(d, true)} aria-label=${`Approve the deletes in ${d.namespace_id}`}>Approve</button>
          <button class="secondary" onClick=${() => resolve(d, false)} aria-label=${`Reject the deletes in ${d.namespace_id}`}>Reject</button></div></td></tr>`)} />
  </main>`;
}

function Users() {
  const [{ data, error }, reload] = useCall(() => call('ListUsers', {}), []);
  const [msg, setMsg] = useState('');
  const [token, setToken] = useState(null);
  const form = (e) => Object.fromEntries(new FormData(e.target));
  async function run(e, fn) {
    e.preventDefault();
    setMsg('');
    try { await fn(form(e)); e.target.reset(); reload(); } catch (err) { setMsg(err.message); }
  }
  const users = (data && data.users) || [];
  return html`<main><h1>Users and enrollment</h1><${ErrorText} text=${error || msg} />
    ${token && html`<p class="notice" role="status">Enrollment token for ${token.user_id} (shown once, ${token.uses} use(s), until ${when(token.expires_at_unix_ms)}): <code>${token.token}</code></p>`}
    <${Table} caption="Users" empty="No users." head=${['User', 'Name', 'Shard', 'Quota', 'State']}
      rows=${users.map((u) => html`<tr><td>${u.user_id}</td><td>${u.display_name}</td><td class="num">${u.shard}</td>
        <td>${num(u.quota_bytes) ? bytes(u.quota_bytes) : 'unlimited'}</td><td>${u.disabled ? 'disabled' : 'active'}</td></tr>`)} />
    <h2>New enrollment token</h2>
    <form class="inline" id="enroll" onSubmit=${(e) => run(e, async (f) => setToken(await call('CreateEnrollmentToken',
      { user_id: f.user_id, uses: Number(f.uses || 1), ttl_seconds: Number(f.hours || 24) * 3600 })))}>
      <div><label for="enroll-user">User</label><input id="enroll-user" name="user_id" required /></div>
      <div><label for="enroll-uses">Devices</label><input id="enroll-uses" name="uses" type="number" min="1" max="1000" value="1" /></div>
      <div><label for="enroll-hours">Valid (hours)</label><input id="enroll-hours" name="hours" type="number" min="1" max="720" value="24" /></div>
      <button type="submit">Create token</button></form>
    <h2>New user</h2>
    <form class="inline" id="new-user" onSubmit=${(e) => run(e, (f) => call('CreateUser', f))}>
      <div><label for="new-user-id">User id</label><input id="new-user-id" name="user_id" required /></div>
      <div><label for="new-user-name">Display name</label><input id="new-user-name" name="display_name" /></div>
      <button type="submit">Create user</button></form>
    <h2>Set a password</h2>
    <form class="inline" id="set-password" onSubmit=${(e) => run(e, (f) => call('SetUserPassword', f))}>
      <div><label for="pw-user">User</label><input id="pw-user" name="user_id" required /></div>
      <div><label for="pw-new">New password (10+ characters)</label><input id="pw-new" name="password" type="password" autocomplete="new-password" required minlength="10" /></div>
      <button type="submit">Set password</button></form>
  </main>`;
}

function Shards() {
  const [{ data, error }] = useCall(() => call('ListShards', {}), []);
  const shards = (data && data.shards) || [];
  return html`<main><h1>Store shards</h1><${ErrorText} text=${error} />
    <p class="muted">${data && (data.in_etcd ? 'The shard map lives in etcd.' : 'Shards as configured by --store.')}</p>
    <${Table} caption="Store shards" empty="No shards." head=${['Shard', 'Address', 'Users', 'Moved in', 'Takes new users']}
      rows=${shards.map((s) => html`<tr><td class="num">${s.index}</td><td><code>${s.address}</code></td>
        <td class="num">${s.users}</td><td class="num">${s.moved_in}</td><td>${s.drained ? 'no (drained)' : 'yes'}</td></tr>`)} />
  </main>`;
}

function NamespacePicker({ ns, base }) {
  const [{ data }] = useCall(() => call('ListNamespaces', {}), []);
  const list = (data && data.namespaces) || [];
  return html`<form class="inline" onSubmit=${(e) => e.preventDefault()}>
    <div><label for="ns-pick">Namespace</label>
    <select id="ns-pick" value=${ns} onChange=${(e) => { location.hash = `${base}/${encodeURIComponent(e.target.value)}`; }}>
      <option value="">choose…</option>
      ${list.map((n) => html`<option value=${n.namespace_id}>${n.namespace_id}</option>`)}
    </select></div></form>`;
}

function Browse({ ns }) {
  const [folder, setFolder] = useState('');
  const [at, setAt] = useState('');
  const [deleted, setDeleted] = useState(false);
  const [file, setFile] = useState(null);
  useEffect(() => { setFolder(''); setFile(null); }, [ns]);
  const atMs = at ? new Date(at).getTime() : 0;
  const [{ data, error }] = useCall(() => (ns ? call('ListFolder', { namespace_id: ns, folder, at_unix_ms: atMs, include_deleted: deleted })
    : Promise.resolve(null)), [ns, folder, atMs, deleted]);
  const [versions, setVersions] = useState({ data: null, error: null });
  const [restored, setRestored] = useState('');
  const loadVersions = useCallback(() => {
    if (!file) return;
    call('ListFileVersions', { namespace_id: ns, path: file }).then((d) => setVersions({ data: d, error: null }),
      (e) => setVersions({ data: null, error: e.message }));
  }, [ns, file]);
  useEffect(() => { setRestored(''); loadVersions(); }, [loadVersions]);
  async function restore(v) {
    if (!confirm(`Bring back version ${v.seq} of ${file}? Every device gets it; the current one stays in history.`)) return;
    try {
      const r = await call('RestoreVersion', { namespace_id: ns, path: file, seq: v.seq });
      setRestored(`Restored version ${v.seq} of ${file} (commit ${r.seq}); your devices are applying it.`);
      loadVersions();
    } catch (e) { setRestored(e.message); }
  }
  const parts = folder ? folder.split('/') : [];
  const join = (name) => (folder ? `${folder}/${name}` : name);
  return html`<main><h1>Browse</h1><${NamespacePicker} ns=${ns} base="#/browse" />
    ${ns && html`<form class="inline" onSubmit=${(e) => e.preventDefault()}>
      <div><label for="as-of">As of (empty: now)</label><input id="as-of" type="datetime-local" value=${at} onChange=${(e) => setAt(e.target.value)} /></div>
      <div><label for="show-deleted"><input id="show-deleted" type="checkbox" checked=${deleted} onChange=${(e) => setDeleted(e.target.checked)} /> Show deleted</label></div>
    </form>
    <nav class="crumbs" aria-label="Folder"><button class="link" onClick=${() => setFolder('')}>${ns}</button>
      ${parts.map((p, i) => html`<span aria-hidden="true">/</span><button class="link" onClick=${() => setFolder(parts.slice(0, i + 1).join('/'))}>${p}</button>`)}</nav>
    <${ErrorText} text=${error} />
    ${data && html`<${Table} caption=${`${data.entries.length} entries${data.truncated ? ' (the first, by name)' : ''}; namespace at seq ${data.head_seq}`}
      empty="This folder is empty." head=${['Name', { label: 'Size', num: true }, 'Modified', 'Last change by', 'Versions']}
      rows=${data.entries.map((e) => html`<tr>
        <td>${e.directory ? html`<button class="link" onClick=${() => setFolder(join(e.name))}>${e.name}/</button>` : e.name}
          ${e.deleted ? html` <span class="state-bad">(deleted)</span>` : ''}</td>
        <td class="num">${e.directory ? '' : bytes(e.size)}</td><td>${when(e.mtime_unix_ms)}</td>
        <td>${e.device_name || e.device || ''}</td>
        <td>${e.directory ? '' : html`<button class="secondary" onClick=${() => setFile(join(e.name))} aria-label=${`Versions of ${e.name}`}>Versions</button>`}</td></tr>`)} />`}
    ${file && html`<h2>Versions of <code>${file}</code></h2><${ErrorText} text=${versions.error} />
      ${restored && html`<p class="notice" role="status">${restored}</p>`}
      ${versions.data && html`<${Table} caption="Kept versions, newest first" empty="No kept versions."
        head=${['Seq', 'Committed', { label: 'Size', num: true }, 'By', 'SHA-256', 'Download', 'Restore']}
        rows=${versions.data.versions.map((v, i) => html`<tr><td class="num">${v.seq}</td><td>${when(v.committed_at_unix_ms)}</td>
          <td class="num">${v.deleted ? 'deleted' : bytes(v.size)}</td><td>${v.device_name || v.device}</td>
          <td><code>${(v.content_sha256 || '').slice(0, 16)}</code></td>
          <td>${v.deleted || v.directory ? '' : html`<a href=${`/api/download?namespace_id=${encodeURIComponent(ns)}&path=${encodeURIComponent(file)}&seq=${v.seq}`}
            download aria-label=${`Download version ${v.seq}`}>Download</a>`}</td>
          <td>${i === 0 ? html`<span class="muted">current</span>`
            : html`<button class="secondary" onClick=${() => restore(v)} aria-label=${`Restore version ${v.seq}`}>Restore</button>`}</td></tr>`)} />`}`}`}
  </main>`;
}

// Side: one file of a conflict, as its newest kept version says, with a download.
function Side({ ns, path, title, onKeep, keepLabel }) {
  const [{ data, error }] = useCall(() => call('ListFileVersions', { namespace_id: ns, path, limit: 1 }), [ns, path]);
  const v = data && data.versions[0];
  return html`<div><h2>${title}</h2><p><code>${path}</code></p><${ErrorText} text=${error} />
    ${v && html`<p>${v.deleted ? 'deleted' : bytes(v.size)} · by ${v.device_name || v.device} · ${when(v.committed_at_unix_ms)}
      ${!v.deleted && html` · <a href=${`/api/download?namespace_id=${encodeURIComponent(ns)}&path=${encodeURIComponent(path)}&seq=${v.seq}`}
        download aria-label=${`Download ${path}`}>Download</a>`}</p>`}
    <p><button onClick=${onKeep}>${keepLabel}</button></p></div>`;
}

function Conflicts({ ns }) {
  const [{ data, error }, reload] = useCall(() => (ns ? call('ListConflicts', { namespace_id: ns }) : Promise.resolve(null)), [ns]);
  const [msg, setMsg] = useState('');
  async function resolve(c, keep) {
    try {
      await call('ResolveConflict', { namespace_id: ns, path: c.path, keep });
      setMsg(keep === 'KEEP_COPY' ? `Kept the other edit at ${c.original_path}; the copy is gone from your devices.`
        : keep === 'KEEP_ORIGINAL' ? `Kept ${c.original_path}; the copy is gone from your devices.` : `Resolved: ${c.path}`);
      reload();
    } catch (e) { setMsg(e.message); }
  }
  const list = (data && data.conflicts) || [];
  return html`<main><h1>Conflicts</h1><${NamespacePicker} ns=${ns} base="#/conflicts" /><${ErrorText} text=${error} />
    ${msg && html`<p class="notice" role="status">${msg}</p>`}
    ${ns && data && (list.length ? list.map((c) => html`<section class="card" aria-label=${`Conflict ${c.path}`}>
      <div class="side-by-side">
        <${Side} ns=${ns} path=${c.original_path} title="Kept at the path" keepLabel="Keep this one"
          onKeep=${() => resolve(c, 'KEEP_ORIGINAL')} />
        <${Side} ns=${ns} path=${c.path} title="The other edit, kept as a copy" keepLabel="Keep this one instead"
          onKeep=${() => resolve(c, 'KEEP_COPY')} />
      </div>
      <p class="muted">The copy was made by ${c.device_name || c.device}, detected ${c.detected_at}. Keeping one side
        deletes the copy on every device (the other side stays in history); or keep both files and only mark it resolved.</p>
      <p><button class="secondary" onClick=${() => resolve(c)} aria-label=${`Keep both files and mark ${c.path} resolved`}>Keep both</button></p></section>`)
      : html`<p class="muted">No open conflicts in ${ns}.</p>`)}
  </main>`;
}

function route() {
  const [page, arg] = location.hash.replace(/^#\/?/, '').split('/');
  return { page: page || '', arg: decodeURIComponent(arg || '') };
}

function App() {
  const [session, setSession] = useState(undefined);
  const [where, setWhere] = useState(route());
  useEffect(() => {
    const on = () => setWhere(route());
    addEventListener('hashchange', on);
    fetch('/api/session', { credentials: 'same-origin' }).then((r) => (r.ok ? r.json() : null))
      .then((s) => { if (s) csrf = s.csrf; setSession(s); }, () => setSession(null));
    return () => removeEventListener('hashchange', on);
  }, []);
  if (session === undefined) return html`<main><h1>Converge console</h1><p>Loading…</p></main>`;
  if (!session) return html`<${SignIn} onIn=${(s) => { csrf = s.csrf; setSession(s); }} />`;
  const op = session.kind === 'operator';
  const pages = op
    ? [['', 'Fleet'], ['namespaces', 'Namespaces'], ['deletes', 'Held deletes'], ['users', 'Users'], ['shards', 'Shards'], ['browse', 'Browse'], ['conflicts', 'Conflicts']]
    : [['', 'My devices'], ['namespaces', 'Namespaces'], ['browse', 'Browse'], ['conflicts', 'Conflicts']];
  async function signOut() {
    await fetch('/api/session', { method: 'DELETE', credentials: 'same-origin', headers: { 'X-CSRF-Token': csrf } });
    csrf = '';
    setSession(null);
  }
  const current = where.page === 'namespace' ? 'namespaces' : where.page;
  let body;
  switch (where.page) {
    case 'namespaces': body = html`<${Namespaces} />`; break;
    case 'namespace': body = html`<${NamespaceStatus} ns=${where.arg} />`; break;
    case 'deletes': body = op ? html`<${Deletes} />` : null; break;
    case 'users': body = op ? html`<${Users} />` : null; break;
    case 'shards': body = op ? html`<${Shards} />` : null; break;
    case 'browse': body = html`<${Browse} ns=${where.arg} />`; break;
    case 'conflicts': body = html`<${Conflicts} ns=${where.arg} />`; break;
    default: body = html`<${Fleet} session=${session} />`;
  }
  return html`<header><span class="brand">Converge</span>
    <nav aria-label="Pages">${pages.map(([p, label]) => html`<a href=${`#/${p}`} aria-current=${current === p ? 'page' : undefined}>${label}</a>`)}</nav>
    <span class="who">${op ? 'operator' : session.user_id}</span>
    <button class="secondary" onClick=${signOut}>Sign out</button></header>
    ${body || html`<main><h1>Not available</h1><p>This page is for operators.</p></main>`}`;
}

render(html`<${App} />`, document.getElementById('app'));
