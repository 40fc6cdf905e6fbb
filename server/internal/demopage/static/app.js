// The demo page: log in, get a CARTO token, read the group's stores with
// exactly the granted query, show that another query is refused, revoke.
// Plain JS, no dependencies; the session lives in this page's memory only.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const svgNS = 'http://www.w3.org/2000/svg';

  let session = null; // {token, group, username}
  let carto = null; // the IssueCartoToken answer

  // request fetches url and returns {ok, status, data}, data being the JSON
  // body ({} if none); a network failure is status 0 with data {message}.
  async function request(url, init, unreachable) {
    let r;
    try {
      r = await fetch(url, init);
    } catch (e) {
      return { ok: false, status: 0, data: { message: unreachable, error: unreachable } };
    }
    const data = await r.json().catch(() => ({}));
    return { ok: r.ok, status: r.status, data };
  }

  // broker calls the broker's REST API.
  function broker(path, body, bearer) {
    const headers = { 'Content-Type': 'application/json' };
    if (bearer) headers.Authorization = 'Bearer ' + bearer;
    return request(path, { method: 'POST', headers, body: JSON.stringify(body) }, 'the broker cannot be reached');
  }

  // cartoGet calls CARTO's API with the API access token.
  function cartoGet(url) {
    return request(url, { headers: { Authorization: 'Bearer ' + carto.token } }, 'CARTO cannot be reached');
  }

  // mapsQuery runs a query through CARTO's Maps API (allowed to every demo
  // group) and fetches its GeoJSON.
  async function mapsQuery(q) {
    const conn = carto.grants[0].connection_name;
    const params = new URLSearchParams({ q, v: '3.4' });
    const inst = await cartoGet(carto.api_base_url + '/v3/maps/' + encodeURIComponent(conn) + '/query?' + params);
    if (!inst.ok) return inst;
    return cartoGet(inst.data.geojson.url[0]);
  }

  const say = (msg) => { $('status').textContent = msg; };
  const fail = (msg) => { $('error').textContent = msg; };
  const brokerError = (what, res) => fail(what + ' failed (HTTP ' + res.status + '): ' + (res.data.message || 'unknown error'));
  const cartoError = (res) => 'HTTP ' + res.status + ': ' + (res.data.description || res.data.error || 'unknown error');

  function show(id, visible) { $(id).hidden = !visible; }
  function busy(on) {
    for (const b of document.querySelectorAll('button')) b.disabled = on;
    document.body.setAttribute('aria-busy', on ? 'true' : 'false');
  }
  async function step(fn) {
    $('error').textContent = '';
    busy(true);
    try { await fn(); } finally { busy(false); refreshButtons(); }
  }

  // BigQuery string literal, as the broker renders {{group}} in the demo.
  const literal = (s) => "'" + s.replace(/\\/g, '\\\\').replace(/'/g, "\\'") + "'";
  const otherCity = () => (session.group === 'BOSTON' ? 'NEW YORK' : 'BOSTON');

  async function login(ev) {
    ev.preventDefault();
    const username = $('username').value.trim();
    const password = $('password').value;
    if (!username || !password) {
      fail('Enter a username and a password.');
      return;
    }
    await step(async () => {
      const res = await broker('/v1/login', { username, password });
      if (!res.ok) {
        brokerError('Login', res);
        return;
      }
      session = { token: res.data.token, group: res.data.group, username };
      $('password').value = '';
      $('who').textContent = username;
      show('login', false);
      await issue();
      $('token-title').focus();
    });
  }

  async function issue() {
    const res = await broker('/v1/carto-token', {}, session.token);
    if (!res.ok) {
      brokerError('Getting a CARTO token', res);
      return;
    }
    carto = res.data;
    carto.revoked = false;
    $('group').textContent = carto.group;
    $('token-value').textContent = carto.token;
    const exp = new Date(carto.expires_at);
    $('expires').textContent = exp.toLocaleString() + ' (in ' + Math.round((exp - Date.now()) / 3600000) + ' h)';
    $('apis').textContent = carto.allowed_apis.join(', ');
    $('grant').textContent = carto.grants.map((g) => g.connection_name + ': ' + g.source).join('\n');
    $('api-base').textContent = carto.api_base_url;
    $('other-city').textContent = "Try " + otherCity() + "'s query with this token";
    show('token', true);
    show('new-token', false);
    await loadStores();
  }

  async function loadStores() {
    const q = carto.grants[0].source;
    $('query-info').textContent = 'Maps API, the granted query as is, with the token above.';
    const res = await mapsQuery(q);
    if (!res.ok) {
      fail('CARTO refused the granted query: ' + cartoError(res));
      return;
    }
    draw(res.data.features || []);
    say('Signed in as ' + session.username + ': ' + (res.data.features || []).length + ' stores of ' + carto.group + '.');
  }

  async function tryOther() {
    await step(async () => {
      const src = carto.grants[0].source;
      const own = literal(session.group);
      if (!src.includes(own)) {
        fail('The granted query does not name the group as ' + own + '.');
        return;
      }
      const other = otherCity();
      const res = await mapsQuery(src.replace(own, literal(other)));
      if (res.ok) {
        fail('CARTO answered ' + other + "'s query with this token: the grant is too wide!");
        return;
      }
      fail('Refused, as it should be. CARTO answered ' + other + "'s query with " + cartoError(res) +
        '. The token only reads the granted query.');
    });
  }

  async function revoke() {
    await step(async () => {
      const res = await broker('/v1/revoke', { carto_token: carto.token }, session.token);
      if (!res.ok) {
        brokerError('Revoking the token', res);
        return;
      }
      carto.revoked = true;
      const check = await mapsQuery(carto.grants[0].source);
      clearStores();
      say('Token revoked at CARTO. The same query with it now gets ' +
        (check.ok ? 'an answer (unexpected!)' : cartoError(check)) + '.');
      show('new-token', true);
      $('new-token').focus();
    });
  }

  async function newToken() {
    await step(issue);
  }

  async function logout() {
    await step(async () => {
      const res = await broker('/v1/revoke', { session: true }, session.token);
      if (!res.ok) {
        brokerError('Logging out', res);
        return;
      }
      session = null;
      carto = null;
      clearStores();
      show('token', false);
      show('login', true);
      say('Logged out: the session is revoked until it would have expired.');
      $('username').focus();
    });
  }

  function refreshButtons() {
    if (!carto) return;
    $('other-city').disabled = carto.revoked;
    $('revoke').disabled = carto.revoked;
  }

  function clearStores() {
    $('points').replaceChildren();
    $('grid').replaceChildren();
    $('store-list').replaceChildren();
    show('stores', false);
  }

  // draw puts the stores on the map (an equirectangular projection fitted to
  // them, with a graticule) and in the list, numbered alike.
  function draw(features) {
    clearStores();
    const pts = features
      .filter((f) => f.geometry && f.geometry.type === 'Point')
      .map((f) => ({ lon: f.geometry.coordinates[0], lat: f.geometry.coordinates[1], p: f.properties || {} }));
    $('stores-heading').textContent = 'Stores of ' + carto.group + ' (' + pts.length + ')';
    show('stores', true);
    if (pts.length === 0) {
      $('map-desc').textContent = 'No stores.';
      return;
    }
    const W = 400, H = 300, pad = 30;
    let minLon = Math.min(...pts.map((x) => x.lon)), maxLon = Math.max(...pts.map((x) => x.lon));
    let minLat = Math.min(...pts.map((x) => x.lat)), maxLat = Math.max(...pts.map((x) => x.lat));
    const k = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
    const spanX = Math.max((maxLon - minLon) * k, 0.01), spanY = Math.max(maxLat - minLat, 0.01);
    const scale = Math.min((W - 2 * pad) / spanX, (H - 2 * pad) / spanY);
    const cx = (minLon + maxLon) / 2, cy = (minLat + maxLat) / 2;
    const x = (lon) => W / 2 + (lon - cx) * k * scale;
    const y = (lat) => H / 2 - (lat - cy) * scale;

    const grid = $('grid');
    const stepDeg = 0.02;
    for (let lon = Math.floor((cx - W / 2 / k / scale) / stepDeg) * stepDeg; lon <= cx + W / 2 / k / scale; lon += stepDeg) {
      grid.append(line(x(lon), 0, x(lon), H));
    }
    for (let lat = Math.floor((cy - H / 2 / scale) / stepDeg) * stepDeg; lat <= cy + H / 2 / scale; lat += stepDeg) {
      grid.append(line(0, y(lat), W, y(lat)));
    }

    const points = $('points');
    const list = $('store-list');
    pts.forEach((s, i) => {
      const n = String(i + 1);
      const label = (s.p.storetype || 'Store') + ', ' + (s.p.address || '') + ', ' + (s.p.city || '');
      const g = document.createElementNS(svgNS, 'g');
      g.setAttribute('class', 'store');
      g.dataset.city = s.p.city || '';
      g.dataset.storeId = s.p.store_id || '';
      const c = document.createElementNS(svgNS, 'circle');
      c.setAttribute('cx', x(s.lon).toFixed(1));
      c.setAttribute('cy', y(s.lat).toFixed(1));
      c.setAttribute('r', '9');
      const title = document.createElementNS(svgNS, 'title');
      title.textContent = n + '. ' + label;
      const t = document.createElementNS(svgNS, 'text');
      t.setAttribute('x', x(s.lon).toFixed(1));
      t.setAttribute('y', (y(s.lat) + 4).toFixed(1));
      t.textContent = n;
      g.append(title, c, t);
      points.append(g);

      const li = document.createElement('li');
      li.dataset.city = s.p.city || '';
      li.textContent = label + (s.p.revenue ? ' (revenue $' + Math.round(s.p.revenue).toLocaleString('en-US') + ')' : '');
      list.append(li);
    });
    $('map-desc').textContent = pts.length + ' stores of ' + carto.group + ', numbered as in the list.';
    $('map-caption').textContent = 'Longitude ' + minLon.toFixed(3) + ' to ' + maxLon.toFixed(3) +
      ', latitude ' + minLat.toFixed(3) + ' to ' + maxLat.toFixed(3) + '; grid every ' + stepDeg + '°.';
  }

  function line(x1, y1, x2, y2) {
    const l = document.createElementNS(svgNS, 'line');
    l.setAttribute('x1', x1.toFixed(1));
    l.setAttribute('y1', y1.toFixed(1));
    l.setAttribute('x2', x2.toFixed(1));
    l.setAttribute('y2', y2.toFixed(1));
    return l;
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('login-form').addEventListener('submit', login);
    for (const b of document.querySelectorAll('[data-username]')) {
      b.addEventListener('click', () => {
        $('username').value = b.dataset.username;
        $('password').value = b.dataset.password;
        $('login-button').focus();
      });
    }
    $('other-city').addEventListener('click', tryOther);
    $('revoke').addEventListener('click', revoke);
    $('new-token').addEventListener('click', newToken);
    $('logout').addEventListener('click', logout);
    $('token-title').tabIndex = -1;
    document.body.dataset.ready = 'true';
  });
})();
