// The demo storefront: a single page (hash routes) over deepshelf's public API.
//   #/            home: recommended for you + trending + recently viewed
//   #/item/ID     product page: similar by text / picture / what customers also bought / hybrid (one list per
//                 signal: a separate "customers also bought" panel showed the behaviour tab's list again)
//   #/search?q=…  semantic search
// Every product click sends a real event (POST /v1/events) and the recommendations are fetched again at once.
// A product opened from a recommendation card carries that list's `recommendation_id` on its view and cart events
// (the click is attributed to the list), and a purchase carries its value (price x quantity), so the dashboard's
// CTR, conversions and revenue count what the demo shopper did (README, "How a shop reads its numbers").

import { ApiError, enc, esc, idOf, itemsOf, optional, request } from "./api.js";
import { rememberClick, takeClick } from "./clicks.js";

const K = 10;
const main = document.getElementById("content");
const shopperSelect = document.getElementById("shopper");
const activityList = document.getElementById("activity");
const lastEvent = document.getElementById("last-event");
const itemCache = new Map(); // item_id -> catalogue fields seen so far

// ---- shopper identity -------------------------------------------------------------------------------------
// "you": a browser-local shopper id (new to the service, so its first answers are cold-start ones);
// "anon": no shopper id; the items of this visit are sent to POST /v1/sessions/recommendations;
// any other value: a shopper id the service knows (demo shoppers from the training data).
const ANON = "__anonymous__";

function randomId(prefix) {
  return `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
}

function browserShopper() {
  let id = localStorage.getItem("deepshelf.shopper.you");
  if (!id) {
    id = randomId("web");
    localStorage.setItem("deepshelf.shopper.you", id);
  }
  return id;
}

// ---- shopper tokens -----------------------------------------------------------------------------------------
// A shopper's personal list (and a search ranked by their history) needs their shopper token beside the public
// key (X-Shopper-Token), minted by the shop's backend: this page never holds the secret. The server writes one per
// advertised shopper into the page; the demo's own endpoint gives this browser's "You" shopper an id and a token
// of its own (a fresh id: a token for an id the browser made up could open anyone's). A shopper without a token
// is served as a visit: the items of this visit go to POST /v1/sessions/recommendations.
const shopperTokens = (() => {
  const meta = document.querySelector('meta[name="deepshelf-shopper-tokens"]');
  try {
    return JSON.parse((meta && meta.content) || "{}") || {};
  } catch {
    return {};
  }
})();
const YOU_TOKEN = "deepshelf.shopper.you.token";

function tokenExpiry(token) {
  const parts = String(token || "").split(".");
  return parts.length === 3 ? Number(parts[1]) * 1000 : 0;
}

/** This browser's shopper with a token from the demo server (POST /demo/shopper), renewed before it expires;
 * where the server has no such endpoint, the browser's own id, served as a visit. */
async function ensureBrowserShopper() {
  const saved = localStorage.getItem(YOU_TOKEN);
  const id = localStorage.getItem("deepshelf.shopper.you");
  if (id && saved && tokenExpiry(saved) > Date.now() + 60_000) {
    shopperTokens[id] = saved;
    return;
  }
  try {
    const given = await request("/demo/shopper", { method: "POST", body: {} });
    if (given && given.user_id && given.token) {
      localStorage.setItem("deepshelf.shopper.you", given.user_id);
      localStorage.setItem(YOU_TOKEN, given.token);
      shopperTokens[given.user_id] = given.token;
    }
  } catch {
    /* not the demo server: "You" is served as a visit */
  }
}

function tokenOf(user) {
  const token = shopperTokens[user];
  return token && tokenExpiry(token) > Date.now() ? token : "";
}

/** Whether the current shopper's list comes from their stored history (a token opens it) or from this visit. */
function servedAsVisit() {
  return isAnonymous() || !tokenOf(currentShopper());
}

const session = {
  id: sessionStorage.getItem("deepshelf.session") || randomId("s"),
  items: JSON.parse(sessionStorage.getItem("deepshelf.session.items") || "[]"),
  save() {
    sessionStorage.setItem("deepshelf.session", this.id);
    sessionStorage.setItem("deepshelf.session.items", JSON.stringify(this.items.slice(-50)));
  },
};
session.save();

// What this tab sent, newest first, per shopper: a shopper's stored history is private data (a private key reads
// it, GET /v1/users/{id}/events), so the panel lists the clicks made here.
const activity = {
  of(user) {
    return JSON.parse(sessionStorage.getItem(`deepshelf.activity.${user}`) || "[]");
  },
  add(user, type, itemId, unknown = false) {
    const rows = [{ type, item_id: itemId, unknown }, ...this.of(user)].slice(0, 20);
    sessionStorage.setItem(`deepshelf.activity.${user}`, JSON.stringify(rows));
  },
};

function currentShopper() {
  return shopperSelect.value || browserShopper();
}

function isAnonymous() {
  return currentShopper() === ANON;
}

/** The user id events are recorded under: the shopper, or an id for this anonymous visit. */
function eventUser() {
  return isAnonymous() ? `anon-${session.id}` : currentShopper();
}

async function loadShoppers() {
  await ensureBrowserShopper();
  const params = new URLSearchParams(location.search);
  const wanted = params.get("shopper");
  // The demo's advertised shoppers (real purchase histories) come first, so the first screen is personal: named
  // in the URL, else the ones the server put in the page. The list of a shop's shoppers is private data: this
  // page, holding a public key, cannot read it.
  const meta = document.querySelector('meta[name="deepshelf-shoppers"]');
  const named = params.get("shoppers") || (meta && meta.content) || "";
  // Real shoppers only: not the ids this page makes up for browsers and anonymous visits.
  const real = named.split(",").map((id) => id.trim()).filter((id) => id && !/^(web|anon)-/.test(id));
  const options = real.slice(0, 8).map((id) => ({ value: id, label: `Shopper ${id}` }));
  options.push({ value: browserShopper(), label: `You (${browserShopper()})` });
  options.push({ value: ANON, label: "Anonymous visitor" });
  const custom = localStorage.getItem("deepshelf.shopper.custom");
  if (custom && !options.some((o) => o.value === custom)) options.push({ value: custom, label: `Shopper ${custom}` });
  if (wanted && !options.some((o) => o.value === wanted)) options.push({ value: wanted, label: `Shopper ${wanted}` });
  shopperSelect.innerHTML = options.map((o) => `<option value="${esc(o.value)}">${esc(o.label)}</option>`).join("");
  // The first advertised shopper is the default (the first option); a choice made earlier in this browser wins.
  const saved = wanted || localStorage.getItem("deepshelf.shopper.current");
  if (saved && options.some((o) => o.value === saved)) shopperSelect.value = saved;
}

// ---- items and cards ----------------------------------------------------------------------------------------
function remember(item) {
  const id = idOf(item);
  if (!id) return;
  const known = itemCache.get(id) || {};
  const merged = { ...known };
  for (const [key, value] of Object.entries(item)) {
    if (value !== null && value !== undefined && value !== "" && !["score", "reason", "rank"].includes(key)) merged[key] = value;
  }
  itemCache.set(id, merged);
}

/** Catalogue fields of an item: from list answers seen so far, else GET /v1/items/{id}. */
async function itemDetails(id, full = false) {
  const known = itemCache.get(id);
  if (known && known.title && (!full || known.fetched)) return known;
  try {
    const answer = await optional(`/v1/items/${enc(id)}`);
    if (answer) remember({ ...(answer.item || answer), item_id: id, fetched: true });
  } catch {
    /* shown without details */
  }
  return itemCache.get(id) || { item_id: id };
}

async function withDetails(items) {
  items.forEach(remember);
  return Promise.all(items.map(async (item) => ({ ...(await itemDetails(idOf(item))), ...stripEmpty(item) })));
}

function stripEmpty(item) {
  return Object.fromEntries(Object.entries(item).filter(([, v]) => v !== null && v !== undefined && v !== ""));
}

const REASONS = {
  sequence: "From your recent clicks",
  session: "From this visit",
  also_bought: "Bought together",
  co_purchase: "Bought together",
  behavior: "Shoppers also chose",
  behaviour: "Shoppers also chose",
  collaborative: "Shoppers like you",
  personal: "For you",
  trending: "Trending now",
  popular: "Popular",
  popularity: "Popular",
  text: "Similar description",
  semantic: "Matches your search",
  search: "Matches your search",
  keyword: "Matches your search",
  visual: "Looks similar",
  hybrid: "Similar overall",
  content: "Similar product",
  new: "New, like your picks",
  new_item: "New in",
  new_arrival: "New in",
  catalog: "From the catalogue",
  similar: "Like what you viewed",
  text_match: "Title matches",
  boost: "Featured",
  bought_before: "Buy it again",
  similar_to_recent: "Like what you viewed",
};
// In search results "text" means the query's meaning matched, not a similar description.
const SEARCH_REASONS = { text: "Matches the meaning", text_match: "Words match", keyword: "Words match" };

/** A shopper-readable label for the API's `reason` ("text+personal" -> "Matches the meaning, for you"). */
function reasonLabel(item, context = "") {
  const parts = String(item.reason ?? "").toLowerCase().split("+").filter(Boolean);
  if (!parts.length) return "";
  const table = context === "search" ? { ...REASONS, ...SEARCH_REASONS } : REASONS;
  const main = parts.filter((p) => p !== "personal" || parts.length === 1).map((p) => table[p] || p.replace(/_/g, " "));
  return main.join(", ") + (parts.length > 1 && parts.includes("personal") ? ", for you" : "");
}

function hue(id) {
  let h = 0;
  for (const c of id) h = (h * 31 + c.charCodeAt(0)) % 360;
  return h;
}

function initials(title, id) {
  const words = String(title || id).replace(/[^A-Za-z0-9 ]/g, " ").split(/\s+/).filter((w) => w.length > 1);
  return (words.slice(0, 2).map((w) => w[0]).join("") || String(id).slice(0, 2)).toUpperCase();
}

function imageOf(item) {
  // The API answers a URL: this server's copy (/v1/items/ID/image) or the shop's own image_url.
  const url = String(item.image || item.image_url || "");
  return /^(https?:\/\/|\/)/.test(url) ? url : "";
}

function thumb(item, big = false) {
  const id = idOf(item);
  const url = imageOf(item);
  const style = `background: hsl(${hue(id)} 38% ${big ? 42 : 46}%)`;
  if (url) return `<div class="thumb" style="background:#fff"><img src="${esc(url)}" alt="" loading="lazy"></div>`;
  return `<div class="thumb" style="${style}" aria-hidden="true">${esc(initials(item.title, id))}</div>`;
}

function price(item) {
  const p = Number(item.price);
  return Number.isFinite(p) && item.price !== null && item.price !== undefined ? `£${p.toFixed(2)}` : "";
}

/** "Because you viewed …": the shopper's recent product the API says this one relates to (`because`). */
function becauseText(item) {
  const b = item.because;
  if (!b || !b.item_id || b.item_id === idOf(item)) return "";
  const known = itemCache.get(String(b.item_id)) || {};
  return `Because you viewed ${b.title || known.title || `product ${b.item_id}`}`;
}

function card(item, context = "", fresh = false, recommendationId = "") {
  const id = idOf(item);
  const title = item.title || `Product ${id}`;
  const label = reasonLabel(item, context);
  const because = becauseText(item);
  const why = item.reason ? `reason: ${item.reason}${item.because ? ` (because of ${item.because.item_id})` : ""}` : "";
  const score = typeof item.score === "number" ? `score ${item.score.toFixed(3)}` : "";
  const spoken = [label, because, fresh ? "new for you" : ""].filter(Boolean).join(", ");
  const listId = recommendationId ? ` data-recommendation-id="${esc(recommendationId)}"` : "";
  return `<li class="card${fresh ? " fresh" : ""}" data-item-id="${esc(id)}"${listId} data-reason="${esc(item.reason ?? "")}"${item.because ? ` data-because="${esc(item.because.item_id)}"` : ""}>
    <a class="open" href="#/item/${enc(id)}" aria-label="${esc(title)}${spoken ? `, ${esc(spoken)}` : ""}">
      ${thumb(item)}
      <div class="body">
        <span class="title">${esc(title)}</span>
        <span class="price">${esc(price(item))}</span>
        ${fresh ? `<span class="fresh-badge">New for you</span>` : ""}
        ${label ? `<span class="reason" data-reason="${esc(String(item.reason).toLowerCase().split("+")[0])}" title="${esc(why)}">${esc(label)}</span>` : ""}
        ${because ? `<span class="because">${esc(because)}</span>` : ""}
        ${score ? `<span class="score">${esc(score)}</span>` : ""}
      </div>
    </a>
  </li>`;
}

// The last "recommended for you" list shown per shopper: items that were not in it are marked "New for you",
// so a click's effect on the list is visible at a glance.
const shownRecs = new Map();

/** Fill a section's list from a loader; shows the model version and an honest message on empty or error. */
async function fill(sectionId, loader, emptyText = "Nothing to show yet.", context = "") {
  const section = document.getElementById(sectionId);
  if (!section) return;
  const list = section.querySelector("ul");
  const meta = section.querySelector("h2 small");
  try {
    const answer = await loader();
    const items = await withDetails(itemsOf(answer).filter((it) => idOf(it)));
    if (!document.body.contains(section)) return; // the page changed meanwhile
    const before = sectionId === "recs" ? shownRecs.get(currentShopper()) : undefined;
    if (sectionId === "recs") shownRecs.set(currentShopper(), new Set(items.map(idOf)));
    const fresh = (it) => Boolean(before && !before.has(idOf(it)));
    const listId = (answer && answer.recommendation_id) || "";
    list.innerHTML = items.length ? items.map((it) => card(it, context, fresh(it), listId)).join("") : `<li class="row-empty">${esc(emptyText)}</li>`;
    section.dataset.loaded = String(Date.now());
    section.dataset.items = items.map(idOf).join(",");
    section.dataset.recommendationId = listId;
    if (meta) meta.textContent = answer && answer.model_version ? `model ${answer.model_version}` : "";
    list.classList.remove("flash");
    void list.offsetWidth; // restart the highlight animation
    list.classList.add("flash");
  } catch (err) {
    if (!document.body.contains(section)) return;
    const text = err instanceof ApiError && err.status === 400 ? err.message : `Could not load: ${err.message}`;
    list.innerHTML = `<li class="row-empty status error">${esc(text)}</li>`;
    section.dataset.loaded = String(Date.now());
    section.dataset.items = "";
  }
}

function sectionHtml(id, title, extra = "") {
  return `<section id="${id}" aria-labelledby="${id}-h">
    <h2 id="${id}-h">${esc(title)} <small></small></h2>${extra}
    <ul class="grid" aria-label="${esc(title)}"><li class="row-empty">Loading…</li></ul>
  </section>`;
}

// ---- answers from the API -----------------------------------------------------------------------------------
function recommendationsForYou(exclude = []) {
  if (servedAsVisit()) {
    if (!session.items.length) return request(`/v1/popular?k=${K}&details=true`);
    return request(`/v1/sessions/recommendations?k=${K}&details=true`, {
      method: "POST",
      body: { item_ids: session.items.slice(-50), k: K, exclude: exclude },
    });
  }
  const shopper = currentShopper();
  return request(`/v1/users/${enc(shopper)}/recommendations?k=${K}&details=true`, { token: tokenOf(shopper) });
}

/** Post one event; `extra` adds `recommendation_id` (a click from a list) or `value` (a purchase's). */
async function sendEvent(type, itemId, extra = {}) {
  const started = performance.now();
  // one id per event: a retry after an uncertain 503 sends the same id, and the service stores the event once
  const eventId = self.crypto && crypto.randomUUID ? crypto.randomUUID() : randomId("e") + Date.now().toString(36);
  const event = { event_id: eventId, user_id: eventUser(), item_id: itemId, type, session_id: session.id,
                  timestamp: new Date().toISOString() };
  if (extra.recommendationId && (type === "view" || type === "cart")) event.recommendation_id = extra.recommendationId;
  if (Number.isFinite(extra.value)) event.value = extra.value;
  const body = { events: [event] };
  if (servedAsVisit()) {
    // the visit's items travel with each session request, so they count even if the event is refused
    session.items.push(itemId);
    session.save();
  }
  try {
    let answer;
    try {
      answer = await request("/v1/events", { method: "POST", body });
    } catch (err) {
      if (err.status !== 503) throw err;
      answer = await request("/v1/events", { method: "POST", body }); // once more, the same event ids
    }
    // the service keeps an event for a product it does not know (a catalogue may lag) and names it
    const unknown = Boolean(answer && (answer.unknown_items || []).includes(itemId));
    activity.add(eventUser(), type, itemId, unknown);
    const ms = Math.round(performance.now() - started);
    lastEvent.classList.remove("error");
    lastEvent.textContent = `Sent ${type} of ${unknown ? `unknown product ${itemId}` : itemId}: stored in ${ms} ms.`;
    return true;
  } catch (err) {
    lastEvent.classList.add("error");
    lastEvent.textContent = err.status === 401 || err.status === 403
      ? `Event refused: this page's public key is not accepted (${err.message})`
      : `Event not sent: ${err.message}`;
    return false;
  }
}

async function refreshActivity() {
  const rows = [];
  if (isAnonymous()) {
    for (const id of session.items.slice(-8).reverse()) rows.push({ type: "view", item_id: id });
  } else {
    rows.push(...activity.of(eventUser()).slice(0, 8));
  }
  const detailed = await Promise.all(rows.map(async (ev) => ({ ev, item: await itemDetails(String(ev.item_id)) })));
  activityList.innerHTML = detailed.length
    ? detailed.map(({ ev, item }) => `<li>${activityLabel(ev, item)} <span class="muted">${esc(ev.type || "")}</span></li>`).join("")
    : `<li class="muted">No events yet: open a product.</li>`;
}

/** A product of the catalogue links to its page by title; one the service named unknown (or that has no catalogue
 * row) says so instead of showing a bare id as if it were a title. */
function activityLabel(ev, item) {
  if (ev.unknown || !item.title) return `<span class="unknown">unknown product ${esc(ev.item_id)}</span>`;
  return `<a href="#/item/${enc(ev.item_id)}">${esc(item.title)}</a>`;
}

// ---- pages --------------------------------------------------------------------------------------------------
async function homePage() {
  document.title = "deepshelf demo store";
  const who = isAnonymous() ? "this visit" : `shopper ${currentShopper()}`;
  main.innerHTML = `<h1>Welcome</h1>
    <p class="muted">Recommendations for ${esc(who)}; click any product and watch them change.</p>
    ${sectionHtml("recs", "Recommended for you")}
    ${sectionHtml("trending", "Trending now")}`;
  await Promise.all([
    fill("recs", () => recommendationsForYou()),
    fill("trending", () => request(`/v1/popular?k=${K}&details=true`)),
  ]);
}

async function productPage(id) {
  main.innerHTML = `<p class="muted">Loading product ${esc(id)}…</p>`;
  const fromList = takeClick(id); // opened from a recommendation card: the list's id goes with its events
  const sent = sendEvent("view", id, { recommendationId: fromList }); // a product opened is a view event
  const item = await itemDetails(id, true); // the whole catalogue row: description, attributes
  const title = item.title || `Product ${id}`;
  document.title = `${title} · deepshelf demo store`;
  // free catalogue attributes (colour, gender, season, ...) as they come from GET /v1/items/{id}
  const attributes = Object.entries(item.attributes || {})
    .filter(([, v]) => ["string", "number"].includes(typeof v) && String(v).length < 40).slice(0, 6)
    .map(([k, v]) => [k.replace(/([a-z])([A-Z])/g, "$1 $2").replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase()), v]);
  const facts = [["Product code", id], ["Price", price(item)], ["Category", item.category], ...attributes,
    ["In stock", item.in_stock === false ? "no" : item.in_stock ? "yes" : ""]]
    .filter(([, v]) => v !== "" && v !== null && v !== undefined);
  const hasPicture = Boolean(imageOf(item) || item.image);
  const modes = [["text", "By description"], ...(hasPicture ? [["visual", "By picture"]] : []), ["behavior", "Also bought"],
    ["hybrid", "Hybrid"]];
  main.innerHTML = `<article class="product" aria-labelledby="product-h">
      ${thumb(item, true)}
      <div>
        <h1 id="product-h">${esc(title)}</h1>
        ${item.description ? `<p>${esc(item.description)}</p>` : ""}
        <dl>${facts.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join("")}</dl>
        <div class="actions">
          <button type="button" id="add-to-cart">Add to cart</button>
          <button type="button" class="secondary" id="buy-now">Buy now</button>
          <a class="button secondary" href="#/">Back to the shop</a>
        </div>
      </div>
    </article>
    ${sectionHtml("similar", "Similar products", `<div class="tabs" role="tablist" aria-label="Similar by">
        ${modes.map(([m, label], i) => `<button type="button" role="tab" id="tab-${m}" data-mode="${m}"
          aria-selected="${i === 0}" tabindex="${i === 0 ? 0 : -1}" aria-controls="similar-list">${label}</button>`).join("")}
      </div>`)}
    ${sectionHtml("recs", "Recommended for you now")}`;
  main.querySelector("#similar ul").id = "similar-list";
  const quantity = 1; // the demo sells one at a time; a shop sends price x quantity as the purchase's value
  const value = Number.isFinite(Number(item.price)) && item.price !== null && item.price !== undefined
    ? Math.round(Number(item.price) * quantity * 100) / 100 : undefined;
  main.querySelector("#add-to-cart").addEventListener("click", () => act("cart", id, { recommendationId: fromList }));
  main.querySelector("#buy-now").addEventListener("click", () => act("purchase", id, { value }));
  const selectTab = setupTabs(id);
  await sent;
  await Promise.all([
    similarFirst(id, hasPicture ? "visual" : "text", selectTab),
    fill("recs", () => recommendationsForYou([id])),
    refreshActivity(),
  ]);
}

/** The first similar-products tab that this run can answer (text/picture need the content model). */
async function similarFirst(id, mode, selectTab) {
  try {
    const answer = await request(`/v1/items/${enc(id)}/similar?mode=${mode}&k=${K}&details=true`);
    await fill("similar", async () => answer);
    await selectTab(mode, false);
  } catch (err) {
    if (err instanceof ApiError && err.status === 409) {
      // this run has no content vectors: only the behaviour tab can answer
      main.querySelectorAll("#similar [role=tab]:not([data-mode=behavior])").forEach((t) => t.remove());
    }
    await selectTab("behavior", true); // the page counts as ready only once this list is filled
  }
}

function setupTabs(id) {
  const tabs = () => [...main.querySelectorAll("#similar [role=tab]")];
  const section = document.getElementById("similar");
  const select = (tab, { focus = false, load = true } = {}) => {
    tabs().forEach((t) => {
      t.setAttribute("aria-selected", String(t === tab));
      t.tabIndex = t === tab ? 0 : -1;
    });
    if (focus) tab.focus();
    const mode = tab.dataset.mode;
    section.dataset.mode = mode;
    if (!load) return Promise.resolve();
    return fill("similar", () => request(`/v1/items/${enc(id)}/similar?mode=${mode}&k=${K}&details=true`),
      mode === "visual" ? "No picture to compare." : "No similar products found.");
  };
  tabs().forEach((tab) => {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (e) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
      if (step) {
        e.preventDefault();
        const all = tabs();
        select(all[(all.indexOf(tab) + step + all.length) % all.length], { focus: true });
      }
    });
  });
  // select(mode, load): used once the first answer is known
  return (mode, load) => {
    const all = tabs();
    return select(all.find((t) => t.dataset.mode === mode) || all[0], { load });
  };
}

async function act(type, id, extra = {}) {
  const ok = await sendEvent(type, id, extra);
  if (ok) toast(type === "cart" ? "Added to cart. Recommendations updated." : "Purchased (demo). Recommendations updated.");
  await Promise.all([fill("recs", () => recommendationsForYou([id])), refreshActivity()]);
}

async function searchPage(query) {
  document.title = `${query} · search · deepshelf demo store`;
  document.getElementById("q").value = query;
  main.innerHTML = `<h1>Results for “${esc(query)}”</h1><div id="understood" class="understood" hidden></div>
    ${sectionHtml("results", "Search results")}`;
  const token = servedAsVisit() ? "" : tokenOf(currentShopper()); // personalised only with the shopper's token
  const user = token ? `&user_id=${enc(currentShopper())}` : "";
  await fill("results", async () => {
    const answer = await request(`/v1/search?q=${enc(query)}&k=20&details=true${user}`, { token });
    showUnderstood(query, answer.understood);
    return answer;
  }, "No products match.", "search");
}

const ATTRIBUTE_NAMES = { type: "Type", colour: "Colour", gender: "For" };

/** What the search made of the words (the answer's `understood`): "showing results for …" when it corrected
 * or relaxed them, and one chip per filter it read from them; removing a chip searches again without the words
 * that named it. */
function showUnderstood(query, understood) {
  const box = document.getElementById("understood");
  if (!box || !understood) return;
  const notes = [];
  if (understood.corrected) {
    notes.push(`Showing results for “<strong>${esc(understood.corrected.reduce(
      (q, c) => q.replace(new RegExp(`\\b${c.from}\\b`, "i"), c.to), query))}</strong>”`);
  }
  if (understood.relaxed) notes.push(`Nothing matched it all; left out: ${esc(understood.relaxed.join(", "))}`);
  if (understood.widened) notes.push(`Few matched it all; then: ${esc(understood.widened.join(", "))}`);
  const chips = (understood.filters || []).map((f) => ({ label: `${ATTRIBUTE_NAMES[f.attribute] || f.attribute}: ${f.values.join(" / ")}`, words: f.words }));
  if (understood.price) {
    const { min, max } = understood.price;
    chips.push({ label: `Price: ${min != null ? `from ${min}` : ""}${min != null && max != null ? " " : ""}${max != null ? `up to ${max}` : ""}`, price: true });
  }
  box.innerHTML = `${notes.map((n) => `<p class="showing">${n}</p>`).join("")}
    <div class="chips" role="list" aria-label="Filters read from your search">${chips.map((c, i) =>
      `<button type="button" role="listitem" class="chip" data-chip="${i}" aria-label="Remove filter ${esc(c.label)}">${esc(c.label)} <span aria-hidden="true">×</span></button>`).join("")}</div>`;
  box.hidden = !notes.length && !chips.length;
  box.querySelectorAll(".chip").forEach((button) => button.addEventListener("click", () => {
    const chip = chips[Number(button.dataset.chip)];
    const rest = chip.price ? withoutPrice(query) : withoutWords(query, chip.words, understood.corrected || []);
    location.hash = rest ? `#/search?q=${enc(rest)}` : "#/";
  }));
}

/** The query's words less the phrases (", "-separated, as the search read them: corrected, lower case). */
function withoutWords(query, phrases, corrected) {
  const typed = Object.fromEntries(corrected.map((c) => [c.to, c.from]));
  let words = query.toLowerCase().replace(/['’`]/g, "").split(/[^a-z0-9£$€.]+/).filter(Boolean);
  for (const phrase of phrases.split(", ")) {
    const drop = phrase.split(" ").map((w) => typed[w] || w);
    for (let i = 0; i + drop.length <= words.length; i++) {
      if (drop.every((w, j) => words[i + j] === w)) {
        words = [...words.slice(0, i), ...words.slice(i + drop.length)];
        break;
      }
    }
  }
  return words.join(" ");
}

function withoutPrice(query) {
  return query.replace(/\b(under|below|less than|cheaper than|up to|over|above|more than|from|between|max|min)\s*[£$€]?\s*\d+([.,]\d+)?(\s*(-|to|and)\s*[£$€]?\d+([.,]\d+)?)?/gi, " ").replace(/\s+/g, " ").trim();
}

let toastTimer;
function toast(text) {
  const el = document.getElementById("toast");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (el.hidden = true), 2500);
}

// ---- routing ------------------------------------------------------------------------------------------------
async function route() {
  const hash = location.hash || "#/";
  const [path, queryString] = hash.slice(1).split("?");
  main.dataset.page = "loading";
  let page = "home";
  if (path.startsWith("/item/")) {
    page = "product";
    await productPage(decodeURIComponent(path.slice("/item/".length)));
  } else if (path === "/search") {
    page = "search";
    await searchPage(new URLSearchParams(queryString).get("q") || "");
  } else {
    await Promise.all([homePage(), refreshActivity()]);
  }
  main.dataset.page = page;
}

function wire() {
  // a click (or Enter) on a recommendation card remembers the list it came from, for the product page's events
  main.addEventListener("click", (e) => {
    const link = e.target.closest && e.target.closest("li.card a.open");
    const li = link && link.closest("li.card");
    if (li && li.dataset.recommendationId) rememberClick(li.dataset.itemId, li.dataset.recommendationId);
  });
  document.getElementById("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = document.getElementById("q").value.trim();
    if (q) location.hash = `#/search?q=${enc(q)}`;
  });
  shopperSelect.addEventListener("change", () => {
    localStorage.setItem("deepshelf.shopper.current", shopperSelect.value);
    route();
  });
  document.getElementById("use-shopper").addEventListener("click", () => {
    const id = document.getElementById("custom-shopper").value.trim();
    if (!id) return;
    localStorage.setItem("deepshelf.shopper.custom", id);
    if (![...shopperSelect.options].some((o) => o.value === id)) shopperSelect.add(new Option(`Shopper ${id}`, id));
    shopperSelect.value = id;
    shopperSelect.dispatchEvent(new Event("change"));
  });
  document.getElementById("new-shopper").addEventListener("click", async () => {
    localStorage.removeItem("deepshelf.shopper.you");
    localStorage.removeItem(YOU_TOKEN);
    session.items = [];
    session.save();
    await ensureBrowserShopper();
    const you = [...shopperSelect.options].find((o) => /^web-/.test(o.value));
    const id = browserShopper();
    you.value = id;
    you.textContent = `You (${id})`;
    shopperSelect.value = id;
    shopperSelect.dispatchEvent(new Event("change"));
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "/" && !["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName)) {
      e.preventDefault();
      document.getElementById("q").focus();
    }
  });
  window.addEventListener("hashchange", () => {
    route();
    main.focus({ preventScroll: true });
    window.scrollTo(0, 0);
  });
}

wire();
loadShoppers().then(route);
