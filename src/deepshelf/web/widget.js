// deepshelf's embeddable widget: one <script> tag on any page of a shop renders a carousel of recommendations.
//
//   <script src="https://RECS.EXAMPLE/v1/widget.js" data-key="PUBLIC_KEY" data-placement="home" data-user="u42"
//           data-token="SHOPPER_TOKEN"></script>
//   <script src="…/v1/widget.js" data-key="PUBLIC_KEY" data-placement="product" data-item="SKU-1"></script>
//   <script src="…/v1/widget.js" data-key="PUBLIC_KEY" data-placement="cart" data-item="SKU-1,SKU-2"></script>
//
// Optional: data-k (items, default 8), data-title (the heading), data-currency (ISO code for prices; without
// it, each price in the currency the catalogue gives for it, e.g. a feed's "14.00 GBP"),
// data-target (a CSS selector of the element to render into; default: right after the script tag),
// data-link (a product URL template with {item_id}: a click opens it after the event is sent).
//
// A signed-in shopper's own list needs their shopper token (data-token, sent as X-Shopper-Token): the shop's
// backend mints it for the shopper it signed in (README, "Shopper tokens") and writes it into the tag. Without
// one (an anonymous visitor, or no token given) the home carousel is the visit's: the products clicked in this
// browser go to POST /v1/sessions/recommendations (popular before the first click), so the public key alone
// reads nobody's history.
//
// No framework and no globals: the carousel lives in an *open shadow root*, so the page's styles do not reach it
// and its styles do not leak out. It calls deepshelf's public API with the public key (X-API-Key), from the
// server the script was loaded from (that server must list the page's origin in DEEPSHELF_CORS_ORIGINS). A click
// on a product posts a `view` event carrying the list's `recommendation_id` (the click is attributed to the list),
// then the carousel is asked again, so it follows what the shopper just looked at. Each click also dispatches a
// `deepshelf:click` DOM event ({item_id, recommendation_id}) on the host element for the shop's own code.
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script) return; // loaded as a module or injected late: nothing tells us our attributes
  var api = new URL(script.src, document.baseURI).origin;
  var data = script.dataset;
  var key = data.key || "";
  var placement = data.placement || "home";
  var k = Math.max(1, Math.min(50, parseInt(data.k || "8", 10) || 8));
  var items = (data.item || "").split(",").map(function (s) { return s.trim(); }).filter(Boolean);
  var user = data.user || anonymousUser();
  var token = data.user ? data.token || "" : ""; // a token opens only the shopper the shop named
  var VISIT = "deepshelf.widget.visit";

  var REASONS = {
    sequence: "From your recent clicks", session: "From this visit", also_bought: "Bought together",
    co_purchase: "Bought together", behavior: "Shoppers also chose", behaviour: "Shoppers also chose",
    collaborative: "Shoppers like you", personal: "For you", trending: "Trending now", popular: "Popular",
    popularity: "Popular", text: "Similar description", visual: "Looks similar", hybrid: "Similar",
    new: "New in", new_item: "New in",
  };
  var HEADINGS = { home: "Recommended for you", product: "Similar products", cart: "You may also like" };

  var host = document.createElement("div");
  host.className = "deepshelf-widget";
  host.setAttribute("data-placement", placement);
  var target = data.target ? document.querySelector(data.target) : null;
  if (target) target.appendChild(host);
  else script.parentNode.insertBefore(host, script.nextSibling);
  var root = host.attachShadow({ mode: "open" });

  var STYLE =
    ":host{all:initial;display:block;font:14px/1.35 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1d2330}" +
    ".box{padding:12px 0}h2{font-size:16px;font-weight:600;margin:0 0 10px}" +
    "ul{display:flex;gap:12px;overflow-x:auto;list-style:none;margin:0;padding:0 0 6px;scroll-snap-type:x mandatory}" +
    "li{flex:0 0 160px;scroll-snap-align:start}" +
    "button{all:unset;box-sizing:border-box;display:flex;flex-direction:column;gap:4px;width:100%;cursor:pointer;" +
    "border:1px solid #e2e5ea;border-radius:8px;padding:8px;background:#fff}" +
    "button:hover,button:focus-visible{border-color:#4a6cf7;box-shadow:0 0 0 2px #4a6cf733}" +
    ".img{width:100%;aspect-ratio:1;border-radius:6px;display:flex;align-items:center;justify-content:center;" +
    "overflow:hidden;color:#fff;font-weight:600;font-size:20px}.img img{width:100%;height:100%;object-fit:cover}" +
    ".title{font-weight:500;display:-webkit-box;-webkit-line-clamp:2;-webkit-box-orient:vertical;overflow:hidden;" +
    "min-height:2.7em}.price{font-weight:600}.reason{font-size:12px;color:#5b6475}" +
    ".msg{color:#5b6475;font-size:13px}.msg small{display:block;margin-top:2px;font-size:12px}";

  render();

  function anonymousUser() {
    // A visitor the shop did not name keeps one id in this browser, so their clicks shape their next carousel.
    var name = "deepshelf.widget.user";
    try {
      var id = localStorage.getItem(name);
      if (!id) {
        id = "anon-" + Math.random().toString(36).slice(2, 12);
        localStorage.setItem(name, id);
      }
      return id;
    } catch (e) {
      return "anon-" + Math.random().toString(36).slice(2, 12);
    }
  }

  function call(method, path, body) {
    var headers = { Accept: "application/json", "X-API-Key": key };
    if (token) headers["X-Shopper-Token"] = token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(api + path, {
      method: method, headers: headers, body: body === undefined ? undefined : JSON.stringify(body),
      keepalive: method === "POST",
    }).then(function (r) {
      if (!r.ok) {
        var err = new Error(method + " " + path + ": " + r.status);
        err.status = r.status;
        throw err;
      }
      return r.json();
    }, function (err) {
      err.unanswered = true; // no answer the page may read: the service is down, or the browser blocked it (CORS)
      throw err;
    });
  }

  function fetchList() {
    var q = "?k=" + k + "&details=true&placement=" + encodeURIComponent(placement);
    if (placement === "product" && items.length) {
      return call("GET", "/v1/items/" + encodeURIComponent(items[0]) + "/similar" + q);
    }
    if (placement === "cart" && items.length) {
      return call("POST", "/v1/sessions/recommendations" + q, { item_ids: items });
    }
    if (token) return call("GET", "/v1/users/" + encodeURIComponent(user) + "/recommendations" + q);
    var visit = visitItems();
    if (!visit.length) return call("GET", "/v1/popular" + q);
    return call("POST", "/v1/sessions/recommendations" + q, { item_ids: visit });
  }

  function visitItems() {
    try {
      return JSON.parse(localStorage.getItem(VISIT) || "[]");
    } catch (e) {
      return [];
    }
  }

  function rememberVisit(itemId) {
    try {
      var items = visitItems().filter(function (i) { return i !== itemId; });
      items.push(itemId);
      localStorage.setItem(VISIT, JSON.stringify(items.slice(-20)));
    } catch (e) {
      /* storage blocked: the next list is the popular one */
    }
  }

  function render() {
    return fetchList().then(show, function (err) {
      return cause(err).then(function (why) {
        root.innerHTML = "<style>" + STYLE + "</style><p class=msg>Recommendations are unavailable right now." +
          "<small></small></p>";
        root.querySelector("small").textContent = why;
        host.setAttribute("data-error", String(err && err.message));
        host.setAttribute("data-cause", why);
      });
    });
  }

  /** The likely cause of a failed list, in words for the shop's developer. A request that got no readable
   * answer is probed without CORS (an opaque answer still says the server is up): a server that answers is
   * refusing this page's origin, the usual first-day mistake. */
  function cause(err) {
    if (err && (err.status === 401 || err.status === 403)) {
      return Promise.resolve("The service refused the key in data-key (" + err.status + "): give the widget a " +
                             "public key of this server (DEEPSHELF_PUBLIC_KEYS).");
    }
    if (!(err && err.unanswered)) return Promise.resolve(String(err && err.message || err));
    var origin = window.location.origin && window.location.origin !== "null" ? window.location.origin
      : "this page's origin (" + window.location.protocol + "//)";
    return fetch(api + "/health", { mode: "no-cors", cache: "no-store" }).then(function () {
      return "The service at " + api + " answers but not to this page: " + origin + " is probably not " +
             "allowed by its CORS settings (add it to DEEPSHELF_CORS_ORIGINS on the server).";
    }, function () {
      return "The service at " + api + " did not answer (is it running, and is this its address?).";
    });
  }

  function show(list) {
    host.setAttribute("data-recommendation-id", list.recommendation_id || "");
    root.innerHTML = "<style>" + STYLE + "</style><div class=box><h2></h2><ul></ul></div>";
    root.querySelector("h2").textContent = data.title || HEADINGS[placement] || "Recommended";
    var ul = root.querySelector("ul");
    (list.items || []).forEach(function (item) {
      var li = document.createElement("li");
      var b = document.createElement("button");
      b.type = "button";
      b.setAttribute("data-item-id", item.item_id);
      b.appendChild(picture(item));
      b.appendChild(text("title", item.title || item.item_id));
      var p = price(item.price, item.currency);
      if (p) b.appendChild(text("price", p));
      var why = reason(item);
      if (why) b.appendChild(text("reason", why));
      b.addEventListener("click", function () { clicked(item.item_id, list.recommendation_id); });
      li.appendChild(b);
      ul.appendChild(li);
    });
    if (!ul.children.length) root.querySelector(".box").appendChild(text("msg", "Nothing to recommend yet."));
  }

  function clicked(itemId, recommendationId) {
    host.dispatchEvent(new CustomEvent("deepshelf:click", {
      detail: { item_id: itemId, recommendation_id: recommendationId }, bubbles: true, composed: true,
    }));
    if (!token) rememberVisit(itemId);
    var event = { user_id: user, item_id: itemId, type: "view" };
    if (recommendationId) event.recommendation_id = recommendationId;
    var sent = call("POST", "/v1/events", { events: [event] });
    if (data.link) {
      sent.then(go, go); // the event is sent with keepalive, so leaving the page does not cancel it
      return sent;
    }
    // Staying on the page: the carousel follows the click (the product's neighbours, the cart with it added).
    if (placement === "product") items = [itemId];
    else if (placement === "cart" && items.indexOf(itemId) < 0) items.push(itemId);
    return sent.then(render, render);

    function go() { window.location.href = data.link.split("{item_id}").join(encodeURIComponent(itemId)); }
  }

  function picture(item) {
    var box = document.createElement("div");
    box.className = "img";
    var url = String(item.image || "");
    if (url) {
      var img = document.createElement("img");
      img.alt = "";
      img.loading = "lazy";
      // a URL that does not load (moved, 404, blocked) shows the placeholder, not a broken-image box
      img.addEventListener("error", function () { placeholder(box, item); });
      img.src = url.charAt(0) === "/" ? api + url : url; // this server's copy, or the shop's own image_url
      box.appendChild(img);
    } else {
      placeholder(box, item);
    }
    return box;
  }

  /** The product's initials on a colour of its id: for a product without a picture, or whose picture failed. */
  function placeholder(box, item) {
    var h = 0, id = String(item.item_id);
    for (var i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) % 360;
    box.style.background = "hsl(" + h + " 38% 46%)";
    box.setAttribute("data-placeholder", "");
    box.textContent = String(item.title || id).replace(/[^A-Za-z0-9 ]/g, " ").split(/\s+/)
      .filter(function (w) { return w.length > 1; }).slice(0, 2).map(function (w) { return w[0]; }).join("")
      .toUpperCase() || id.slice(0, 2).toUpperCase();
  }

  /** The price in data-currency, else in the currency the catalogue gives for the item (the list answer's
   * `currency`, from a feed's "14.00 GBP"); a bare number only when neither names one. */
  function price(value, itemCurrency) {
    if (value === null || value === undefined || !isFinite(Number(value))) return "";
    var currency = data.currency || itemCurrency;
    if (currency) {
      try {
        return new Intl.NumberFormat(undefined, { style: "currency", currency: currency }).format(Number(value));
      } catch (e) { /* an unknown currency code: the number and the code below */ }
      return Number(value).toFixed(2) + " " + currency;
    }
    return Number(value).toFixed(2);
  }

  function reason(item) {
    if (item.because && item.because.title) return "Because you viewed " + item.because.title;
    var parts = String(item.reason || "").toLowerCase().split("+").filter(Boolean);
    return parts.map(function (p) { return REASONS[p] || p.replace(/_/g, " "); })
      .filter(function (v, i, all) { return all.indexOf(v) === i; }).join(", ");
  }

  function text(cls, value) {
    var el = document.createElement("span");
    el.className = cls;
    el.textContent = value;
    return el;
  }
})();
