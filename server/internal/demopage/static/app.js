// The demo page: log in, get a CARTO token, read the group's stores with
// exactly the granted query, show that another query is refused, revoke;
// and run a named query through the broker, the city bound by it.
// Plain JS, no dependencies; the session lives in this page's memory only.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const svgNS = 'http://www.w3.org/2000/svg';

  let session = null; // {token, group, username}
  let carto = null; // the IssueCartoToken answer

  // The named query the page shows, and its one parameter the page sends.
  const NAMED = 'my-stores';
  const NAMED_PARAM = 'storetype';

  // request fetches url and returns {ok, status, data, retryAfter}, data
  // being the JSON body ({} if none); a network failure is status 0 with
  // data {message}.
  async function request(url, init, unreachable) {
    let r;
    try {
      r = await fetch(url, init);
    } catch (e) {
      return { ok: false, status: 0, data: { message: unreachable, error: unreachable } };
    }
    const data = await r.json().catch(() => ({}));
    return { ok: r.ok, status: r.status, data, retryAfter: r.headers.get('Retry-After') };
  }

  // broker calls the broker's REST API.
  function broker(path, body, bearer) {
    const headers = { 'Content-Type': 'application/json' };
    if (bearer) headers.Authorization = 'Bearer ' + bearer;
    return request(path, { method: 'POST', headers, body: JSON.stringify(body) }, 'the broker cannot be reached');
  }

  // brokerGet reads the broker's REST API with the session.
  function brokerGet(path) {
    return request(path, { headers: { Authorization: 'Bearer ' + session.token } }, 'the broker cannot be reached');
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
  const brokerError = (what, res) => fail(what + ' failed (HTTP ' + res.status + '): ' + (res.data.message || 'unknown error') +
    (res.retryAfter ? ' (try again in ' + res.retryAfter + ' s)' : ''));
  const cartoError = (res) => 'HTTP ' + res.status + ': ' + (res.data.description || res.data.error || 'unknown error');

  function show(id, visible) { $(id).hidden = !visible; }
  function busy(on) {
    for (const b of document.querySelectorAll('button, select')) b.disabled = on;
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
      await loadNamed();
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
      clearNamed();
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

  // loadNamed lists the queries the session may run (GET /v1/queries),
  // builds the store-type select from the named query's parameter (its
  // allowed values, its default chosen), and runs it.
  async function loadNamed() {
    clearNamed();
    const res = await brokerGet('/v1/queries');
    if (!res.ok) {
      brokerError('Listing the named queries', res);
      return;
    }
    const q = (res.data.queries || []).find((x) => x.name === NAMED);
    const params = (q && q.parameters) || [];
    const p = params.find((x) => x.name === NAMED_PARAM && !x.bound_to && (x.allowed || []).length > 0);
    if (!p) {
      fail('The broker lists no ' + NAMED + ' query with a list of ' + NAMED_PARAM + ' values for you.');
      return;
    }
    $('named-storetype').replaceChildren(...p.allowed.map((v) => new Option(v, v, v === p.default_value, v === p.default_value)));
    // What the broker binds from the session: the page never sends these.
    $('named-bound').textContent = params.filter((x) => x.bound_to).map((x) => x.name + ' = your ' + x.bound_to +
      (x.bound_to === 'group' ? ', ' + session.group : '') + ' (not sent by the page)').join('; ') || 'nothing';
    show('named', true);
    await runNamed();
  }

  // runNamed runs the named query for its GeoJSON with the chosen store type
  // and the session, and draws the stores.
  async function runNamed() {
    const type = $('named-storetype').value;
    const path = '/v1/queries/' + encodeURIComponent(NAMED) + '/geojson?' + new URLSearchParams({ [NAMED_PARAM]: type });
    const panel = $('named');
    panel.dataset.state = 'loading';
    $('named-request').textContent = 'GET ' + path;
    $('named-count').textContent = 'Asking the broker…';
    const res = await brokerGet(path);
    if (!res.ok) {
      clearView(views.named);
      $('named-count').textContent = 'No answer.';
      panel.dataset.state = 'error';
      brokerError('The named query ' + NAMED, res);
      return;
    }
    const features = res.data.features || [];
    const n = plot(views.named, features, type + ' stores');
    const cities = [...new Set(features.map((f) => (f.properties || {}).city))];
    $('named-count').textContent = n + ' ' + type + (n === 1 ? ' store' : ' stores') +
      (cities.length > 0 ? ', in ' + cities.join(', ') : '') + '.';
    panel.dataset.shown = type;
    panel.dataset.state = 'done';
  }

  function clearNamed() {
    clearView(views.named);
    $('named-storetype').replaceChildren();
    for (const id of ['named-request', 'named-bound', 'named-count']) $(id).textContent = '';
    delete $('named').dataset.shown;
    delete $('named').dataset.state;
    show('named', false);
  }

  // The two drawings of stores: the granted query's and the named query's.
  const views = {
    stores: { points: 'points', grid: 'grid', list: 'store-list', desc: 'map-desc', caption: 'map-caption' },
    named: { points: 'named-points', grid: 'named-grid', list: 'named-list', desc: 'named-map-desc', caption: 'named-map-caption' },
  };

  function clearView(v) {
    for (const id of [v.points, v.grid, v.list]) $(id).replaceChildren();
    $(v.desc).textContent = '';
    $(v.caption).textContent = '';
  }

  function clearStores() {
    clearView(views.stores);
    show('stores', false);
  }

  // draw shows the granted query's stores.
  function draw(features) {
    clearStores();
    const n = plot(views.stores, features, 'stores of ' + carto.group);
    $('stores-heading').textContent = 'Stores of ' + carto.group + ' (' + n + ')';
    show('stores', true);
  }

  // plot puts the stores of features on the view's map (an equirectangular
  // projection fitted to them, with a graticule) and in its list, numbered
  // alike, and returns how many it drew; what names them for the map's
  // description.
  function plot(v, features, what) {
    clearView(v);
    const pts = features
      .filter((f) => f.geometry && f.geometry.type === 'Point')
      .map((f) => ({ lon: f.geometry.coordinates[0], lat: f.geometry.coordinates[1], p: f.properties || {} }));
    if (pts.length === 0) {
      $(v.desc).textContent = 'No ' + what + '.';
      $(v.caption).textContent = 'No stores to draw.';
      return 0;
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

    const grid = $(v.grid);
    const stepDeg = 0.02;
    for (let lon = Math.floor((cx - W / 2 / k / scale) / stepDeg) * stepDeg; lon <= cx + W / 2 / k / scale; lon += stepDeg) {
      grid.append(line(x(lon), 0, x(lon), H));
    }
    for (let lat = Math.floor((cy - H / 2 / scale) / stepDeg) * stepDeg; lat <= cy + H / 2 / scale; lat += stepDeg) {
      grid.append(line(0, y(lat), W, y(lat)));
    }

    const points = $(v.points);
    const list = $(v.list);
    pts.forEach((s, i) => {
      const n = String(i + 1);
      const label = (s.p.storetype || 'Store') + ', ' + (s.p.address || '') + ', ' + (s.p.city || '');
      const g = document.createElementNS(svgNS, 'g');
      g.setAttribute('class', 'store');
      g.dataset.city = s.p.city || '';
      g.dataset.storeId = s.p.store_id || '';
      g.dataset.storetype = s.p.storetype || '';
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
      li.dataset.storeId = s.p.store_id || '';
      li.dataset.storetype = s.p.storetype || '';
      li.textContent = label + (s.p.revenue ? ' (revenue $' + Math.round(s.p.revenue).toLocaleString('en-US') + ')' : '');
      list.append(li);
    });
    $(v.desc).textContent = pts.length + ' ' + what + ', numbered as in the list.';
    $(v.caption).textContent = 'Longitude ' + minLon.toFixed(3) + ' to ' + maxLon.toFixed(3) +
      ', latitude ' + minLat.toFixed(3) + ' to ' + maxLat.toFixed(3) + '; grid every ' + stepDeg + '°.';
    return pts.length;
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
    $('named-storetype').addEventListener('change', () => step(runNamed));
    $('token-title').tabIndex = -1;
    document.body.dataset.ready = 'true';
  });
})();
