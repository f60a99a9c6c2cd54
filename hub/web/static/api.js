// The hub's public API, as the Python client uses it, and the person's sign-in.
//
// Sign-in is the OAuth 2 authorization code flow with PKCE (S256) of the hub's public client
// "tahub-web" (docs/people.md): no secret in the browser, one-time codes, tokens kept in this
// tab's sessionStorage only, refresh tokens rotated by the hub at every use.

const CLIENT = "tahub-web";
const SESSION = "tahub.session";
const PENDING = "tahub.signin";

export class Problem extends Error {
  // A refusal of the hub: its RFC 9457 problem document (detail, rule, field, errors...).
  constructor(status, body) {
    super((body && (body.detail || body.title)) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

function b64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function random(n = 32) {
  return b64url(crypto.getRandomValues(new Uint8Array(n)));
}

const redirectUri = () => `${location.origin}/ui/callback`;

export function session() {
  const raw = sessionStorage.getItem(SESSION);
  return raw ? JSON.parse(raw) : null;
}

function keep(tokens) {
  sessionStorage.setItem(SESSION, JSON.stringify({
    access_token: tokens.access_token,
    refresh_token: tokens.refresh_token,
    expires_at: Date.now() + 1000 * (tokens.expires_in || 60),
  }));
}

export async function signIn(returnTo) {
  const verifier = random(48);
  const challenge = b64url(await crypto.subtle.digest("SHA-256",
    new TextEncoder().encode(verifier)));
  const state = random(16);
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, returnTo }));
  const query = new URLSearchParams({
    response_type: "code", client_id: CLIENT, redirect_uri: redirectUri(),
    scope: "openid email profile offline_access", state, nonce: random(16),
    code_challenge: challenge, code_challenge_method: "S256",
  });
  location.assign(`/oauth/authorize?${query}`);
}

async function tokenRequest(fields) {
  const response = await fetch("/oauth/token", {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ client_id: CLIENT, ...fields }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Problem(response.status, { detail: body.error_description
    || body.detail || body.error || "the hub refused the sign-in" });
  return body;
}

export async function finishSignIn(search) {
  // Back from the sign-in page: check the state, redeem the code; where to go next.
  const params = new URLSearchParams(search);
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  sessionStorage.removeItem(PENDING);
  if (params.get("error")) {
    throw new Problem(400, { detail: `sign-in refused: ${params.get("error_description")
      || params.get("error")}` });
  }
  if (!pending || params.get("state") !== pending.state) {
    throw new Problem(400, { detail: "this sign-in was not started here; sign in again" });
  }
  keep(await tokenRequest({ grant_type: "authorization_code", code: params.get("code"),
    redirect_uri: redirectUri(), code_verifier: pending.verifier }));
  return pending.returnTo || "#/";
}

export function signOut() {
  sessionStorage.removeItem(SESSION);
}

let refreshing = null; // the refresh in flight: calls made meanwhile wait for it

async function refreshOnce() {
  const current = session();
  if (!current || !current.refresh_token) return false;
  try {
    keep(await tokenRequest({ grant_type: "refresh_token",
      refresh_token: current.refresh_token }));
    return true;
  } catch {
    signOut();
    return false;
  }
}

function refresh() {
  // One refresh at a time: a refresh token works once (the hub rotates it and revokes the
  // whole session when a used one comes back), so two calls that find the token expired
  // at once share one refresh instead of each spending the same refresh token.
  if (!refreshing) refreshing = refreshOnce().finally(() => { refreshing = null; });
  return refreshing;
}

async function authorized(path, init = {}) {
  // fetch with the person's token, refreshed first when it is about to expire and once more
  // if the hub answers 401 (a refresh token works once: the hub rotates it).
  const current = session();
  if (current && current.expires_at < Date.now() + 10000) await refresh();
  for (let attempt = 0; attempt < 2; attempt += 1) {
    const headers = { ...(init.headers || {}),
      Authorization: `Bearer ${(session() || {}).access_token || ""}` };
    const response = await fetch(path, { ...init, headers });
    if (response.status === 401 && attempt === 0 && await refresh()) continue;
    return response;
  }
  throw new Problem(401, { detail: "your session has ended; sign in again" });
}

export async function api(path, { method = "GET", json, form } = {}) {
  // One call of the public API: its JSON, or a Problem with the hub's refusal.
  const init = { method, headers: {} };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.body = form;
  }
  const response = await authorized(path, init);
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Problem(response.status, data);
  return data;
}

export async function download(path, name) {
  // Save what a GET of the public API answers as the file ``name`` (CSV, Parquet, JSONL).
  const response = await authorized(path);
  if (!response.ok) {
    throw new Problem(response.status, await response.json().catch(() => ({
      detail: `download failed (HTTP ${response.status})` })));
  }
  const url = URL.createObjectURL(await response.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  URL.revokeObjectURL(url);
}
