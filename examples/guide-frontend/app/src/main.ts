import './style.css'
import 'maplibre-gl/dist/maplibre-gl.css'
import { initMap, setLayer } from './map'
import logo from '../static/acme-logo.svg'

const COMPANY_BASE_API_URL = import.meta.env.VITE_COMPANY_API_BASE_URL

document.querySelector<HTMLDivElement>('#app')!.innerHTML = `
  <div class="container">
    <header class="header">
      <img src="${logo}" height="32" alt="ACME" />
      <div class="header__info" id="login-container"></div>
    </header>
    <main class="content">
      <div id="map"></div>
      <canvas id="deck-canvas"></canvas>
    </main>
  </div>
`

// The login form and an empty map.
initView()

function initView() {
  addLoginForm()
  initMap()
}

function addLoginForm() {
  loginContainer().innerHTML = `
    <input type="text" placeholder="Username" name="username" aria-label="Username" autocomplete="username">
    <input type="password" placeholder="Password" name="password" aria-label="Password" autocomplete="current-password">
    <button type="submit" id="login" class="button button--primary">Login</button>
    <span class="header__error" id="login-error" role="alert"></span>
  `
  document.getElementById('login')!.addEventListener('click', login)
}

async function login() {
  const username = input('username').value
  const password = input('password').value

  // 1. The company backend checks the user (TokenBroker: POST /login).
  const loginResp = await fetch(`${COMPANY_BASE_API_URL}/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password }),
  })
  const { token, error } = await loginResp.json()
  if (!loginResp.ok || error) {
    showError(error || `Login failed (HTTP ${loginResp.status})`)
    return
  }

  // 2. It gives the user's group and a CARTO token for that group
  // (TokenBroker: POST /carto-token).
  const tokenResp = await fetch(`${COMPANY_BASE_API_URL}/carto-token`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      Authorization: 'Bearer ' + token,
    },
  })
  const { token: cartoToken, group, error: tokenError } = await tokenResp.json()
  if (!tokenResp.ok || tokenError) {
    showError(tokenError || `No CARTO token (HTTP ${tokenResp.status})`)
    return
  }

  loginContainer().innerHTML = `
    <div class="profile">
      <span id="profile-user"></span> - <span id="profile-group"></span>
      <button type="button" id="logout" class="button">Logout</button>
    </div>
  `
  document.getElementById('profile-user')!.textContent = username
  document.getElementById('profile-group')!.textContent = group
  document.getElementById('logout')!.addEventListener('click', initView)

  // 3. deck.gl draws the group's stores with that token.
  setLayer(group, cartoToken)
}

function loginContainer() {
  return document.querySelector<HTMLDivElement>('#login-container')!
}

function input(name: string) {
  return document.querySelector<HTMLInputElement>(`input[name="${name}"]`)!
}

function showError(message: string) {
  document.getElementById('login-error')!.textContent = message
}
