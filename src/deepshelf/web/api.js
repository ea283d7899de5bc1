// A small client for deepshelf's public HTTP API (design.md §3), shared by the storefront and the dashboard.
// The pages use nothing the API does not offer to any shop.

// Two kinds of key (README, "Service"). The storefront sends the server's *public* key, which the server writes
// into the page (a <meta>): it may post events and read recommendations, nothing about other shoppers. The
// dashboard needs a *private* key: the admin types it, and it is kept for this tab only (sessionStorage), never
// in the URL or in the page.
const PRIVATE_KEY_STORAGE = "deepshelf.privateKey";

/** The public key the server gave this page ("" when it has none). */
export function publicKey() {
  const meta = document.querySelector('meta[name="deepshelf-public-key"]');
  return (meta && meta.content) || "";
}

/** The private key typed into the dashboard during this tab's life ("" when none). */
export function privateKey() {
  return sessionStorage.getItem(PRIVATE_KEY_STORAGE) || "";
}

export function setPrivateKey(key) {
  if (key) sessionStorage.setItem(PRIVATE_KEY_STORAGE, key);
  else sessionStorage.removeItem(PRIVATE_KEY_STORAGE);
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** fetch + JSON with a readable error: the API's `detail` message when it sends one. Sends the page's public
 * key unless another `key` is given, and a shopper token (X-Shopper-Token) when `token` is given. */
export async function request(path, { method = "GET", body, key = publicKey(), token, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (key) headers["X-API-Key"] = key;
  if (token) headers["X-Shopper-Token"] = token;
  let response;
  try {
    response = await fetch(path, { method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, `cannot reach the service (${err.message})`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!response.ok) {
    throw new ApiError(response.status, `${method} ${path}: ${response.status} ${describe(data) || response.statusText}`);
  }
  return data;
}

function describe(data) {
  if (!data) return "";
  if (typeof data === "string") return data.slice(0, 200);
  const detail = data.detail ?? data.error ?? data.message;
  if (Array.isArray(detail)) return detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
  return typeof detail === "string" ? detail : JSON.stringify(detail ?? data).slice(0, 200);
}

/** GET that answers null on 404/405/501 (an endpoint this server does not have), so a page can degrade. */
export async function optional(path, options) {
  try {
    return await request(path, options);
  } catch (err) {
    if (err instanceof ApiError && [404, 405, 501].includes(err.status)) return null;
    throw err;
  }
}

export const enc = encodeURIComponent;

/** Item list of a list answer, whatever the exact field name. */
export function itemsOf(answer) {
  if (!answer) return [];
  if (Array.isArray(answer)) return answer;
  return answer.items || answer.results || answer.hits || answer.recommendations || [];
}

export function idOf(item) {
  return String(item.item_id ?? item.id ?? item.item ?? "");
}

/** Escape text for innerHTML templates. */
export function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

export function fmt(value, digits = 4) {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : "–";
}
