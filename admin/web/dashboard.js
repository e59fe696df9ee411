// spendguard dashboard: reads /v1/budgets and renders every budget scope.
// Plain JavaScript, no dependencies; every value from the server is put in
// the page as text (scope values come from request headers).
"use strict";

(function () {
  const TOKEN_KEY = "spendguard.admin-token";
  const $ = (id) => document.getElementById(id);
  const state = {
    rows: [],
    sort: { key: "used", dir: -1 },
    filters: {},
    search: "",
    timer: null,
    loading: false,
  };

  // ---- formatting ----
  function money(v) {
    if (v === null || v === undefined) return "–";
    const n = Number(v);
    const abs = Math.abs(n);
    const digits = abs === 0 || abs >= 1 ? 2 : abs >= 0.01 ? 4 : 6;
    return "$" + n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }

  // duration prints "3d 4h", "2h 5m", "4m 10s", "12s", or "1h" when the
  // second unit is zero.
  function duration(ms) {
    if (ms <= 0) return "now";
    const s = Math.round(ms / 1000);
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    const parts = d > 0 ? [[d, "d"], [h, "h"]] : h > 0 ? [[h, "h"], [m, "m"]] : m > 0 ? [[m, "m"], [s % 60, "s"]] : [[s, "s"]];
    return parts.filter((p, i) => i === 0 || p[0] > 0).map((p) => p[0] + p[1]).join(" ");
  }

  function clock(t) {
    const d = new Date(t);
    const sameDay = d.toDateString() === new Date().toDateString();
    const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    return sameDay ? time : d.toLocaleDateString([], { month: "short", day: "numeric" }) + " " + time;
  }

  function scopeText(b) {
    const keys = Object.keys(b.scope).sort();
    return keys.length ? keys.map((k) => k + "=" + b.scope[k]).join(",") : "all";
  }

  function cap(b) {
    return b.hard_usd !== null ? Number(b.hard_usd) : b.soft_usd !== null ? Number(b.soft_usd) : 0;
  }

  // closeness is used/cap: how near a scope is to the cap that matters.
  function closeness(b) {
    const used = Number(b.spent_usd) + Number(b.reserved_usd);
    const c = cap(b);
    if (c > 0) return used / c;
    return used > 0 ? Infinity : 0;
  }

  function periodText(b) {
    if (b.period === "rolling") return "rolling " + duration(b.window_seconds * 1000);
    return b.period;
  }

  // ---- elements ----
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function bar(b) {
    const spent = Number(b.spent_usd), reserved = Number(b.reserved_usd);
    const scale = Math.max(cap(b), spent + reserved, 1e-9);
    const wrap = el("div", "bar");
    const c = el("div", "committed"), r = el("div", "reserved");
    c.style.width = Math.min(100, (spent / scale) * 100) + "%";
    r.style.left = c.style.width;
    r.style.width = Math.min(100, (reserved / scale) * 100) + "%";
    wrap.append(c, r);
    if (b.soft_usd !== null && b.hard_usd !== null) {
      const m = el("div", "mark");
      m.style.left = Math.min(100, (Number(b.soft_usd) / scale) * 100) + "%";
      m.title = "soft cap " + money(b.soft_usd);
      wrap.append(m);
    }
    wrap.title = Math.round(closeness(b) * 100) + "% of the cap used (reserved included)";
    return wrap;
  }

  function amounts(b) {
    const p = el("div", "amounts");
    p.append(el("span", "spent", money(b.spent_usd) + " spent"));
    if (Number(b.reserved_usd) > 0) p.append(el("span", "reserved", " + " + money(b.reserved_usd) + " reserved"));
    const caps = [];
    if (b.soft_usd !== null) caps.push("soft " + money(b.soft_usd));
    if (b.hard_usd !== null) caps.push("hard " + money(b.hard_usd));
    p.append(el("span", "caps muted", " · " + caps.join(" · ")));
    return p;
  }

  function row(b, now) {
    const tr = el("tr", b.state);
    tr.dataset.budget = b.budget;
    tr.dataset.scope = scopeText(b);
    tr.append(el("td", "budget", b.budget));

    const scope = el("td", "scope");
    const keys = Object.keys(b.scope).sort();
    if (!keys.length) scope.append(el("span", "muted", "all traffic"));
    for (const k of keys) {
      const chip = el("span", "chip");
      chip.append(el("b", "", k + "="), document.createTextNode(b.scope[k]));
      scope.append(chip);
    }
    tr.append(scope, el("td", "period", periodText(b)));

    const used = el("td", "used");
    used.append(bar(b), amounts(b));
    tr.append(used);

    const st = el("td", "state-cell");
    st.append(el("span", "state " + b.state, b.state));
    tr.append(st);

    tr.append(el("td", "reset", b.resets_at ? "in " + duration(Date.parse(b.resets_at) - now) : "never"));
    tr.cells[tr.cells.length - 1].title = b.resets_at || "total budgets never reset";

    const burn = el("td", "burn");
    if (b.burn_usd_per_hour === null) {
      burn.append(el("span", "muted", "collecting…"));
      burn.title = "this replica has not sampled this scope for long enough yet";
    } else {
      burn.append(el("span", "rate", money(b.burn_usd_per_hour) + "/h"));
      burn.append(el("div", "muted", "over " + duration(b.burn_window_seconds * 1000)));
    }
    tr.append(burn);

    const ex = el("td", "exhaust");
    if (b.state === "hard") ex.textContent = "exhausted";
    else if (b.exhausts_at) {
      ex.append(el("span", "when", "in " + duration(Date.parse(b.exhausts_at) - now)));
      ex.append(el("div", "muted", clock(b.exhausts_at)));
      ex.title = b.exhausts_at;
    } else if (b.hard_usd === null) ex.append(el("span", "muted", "no hard cap"));
    else if (b.burn_usd_per_hour === null) ex.append(el("span", "muted", "–"));
    else ex.append(el("span", "muted", b.resets_at ? "not before reset" : "not at this rate"));
    tr.append(ex);
    return tr;
  }

  // ---- sorting and filtering ----
  const sorters = {
    budget: (b) => b.budget,
    scope: (b) => scopeText(b),
    period: (b) => periodText(b),
    used: (b) => closeness(b),
    state: (b) => ({ ok: 0, soft: 1, hard: 2 })[b.state],
    reset: (b) => (b.resets_at ? Date.parse(b.resets_at) : Infinity),
    burn: (b) => (b.burn_usd_per_hour === null ? -1 : Number(b.burn_usd_per_hour)),
    exhaust: (b) => (b.state === "hard" ? 0 : b.exhausts_at ? Date.parse(b.exhausts_at) : Infinity),
  };

  function visible() {
    const q = state.search.toLowerCase();
    return state.rows.filter((b) => {
      for (const [k, v] of Object.entries(state.filters)) if (v && b.scope[k] !== v) return false;
      return !q || (b.budget + " " + scopeText(b)).toLowerCase().includes(q);
    });
  }

  function render() {
    const now = Date.now();
    const key = sorters[state.sort.key];
    const rows = visible().sort((a, b) => {
      const x = key(a), y = key(b);
      const c = x < y ? -1 : x > y ? 1 : scopeText(a) < scopeText(b) ? -1 : 1;
      return c * state.sort.dir;
    });
    const body = document.querySelector("#budgets tbody");
    body.replaceChildren(...rows.map((b) => row(b, now)));
    $("empty").hidden = rows.length > 0;
    $("count").textContent = rows.length + " of " + state.rows.length + " scopes";
    for (const th of document.querySelectorAll("th[data-sort]")) {
      th.setAttribute("aria-sort", th.dataset.sort === state.sort.key ? (state.sort.dir > 0 ? "ascending" : "descending") : "none");
    }
    const hard = state.rows.filter((b) => b.state === "hard").length;
    const soft = state.rows.filter((b) => b.state === "soft").length;
    $("summary").textContent = state.rows.length + " scopes · " + hard + " at the hard cap · " + soft + " past the soft cap";
  }

  function renderFilters() {
    const dims = {};
    for (const b of state.rows) for (const [k, v] of Object.entries(b.scope)) (dims[k] = dims[k] || new Set()).add(v);
    for (const k of Object.keys(state.filters)) dims[k] = dims[k] || new Set([state.filters[k]]);
    const box = $("filters");
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.dim : null;
    box.replaceChildren();
    for (const k of Object.keys(dims).sort()) {
      const label = el("label", "", k);
      const sel = el("select");
      sel.dataset.dim = k;
      sel.append(new Option("any", ""));
      for (const v of [...dims[k]].sort()) sel.append(new Option(v, v));
      sel.value = state.filters[k] || "";
      sel.addEventListener("change", () => {
        if (sel.value) state.filters[k] = sel.value;
        else delete state.filters[k];
        saveFilters();
        render();
      });
      label.append(sel);
      box.append(label);
      if (focused === k) sel.focus();
    }
  }

  function saveFilters() {
    const q = new URLSearchParams(state.filters).toString();
    history.replaceState(null, "", q ? "?" + q : location.pathname);
  }

  // ---- data ----
  function token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  function setStatus(text, error) {
    $("status").textContent = text;
    $("status").className = error ? "error" : "";
  }

  async function refresh() {
    if (state.loading) return;
    state.loading = true;
    try {
      const headers = { accept: "application/json" };
      if (token()) headers.authorization = "Bearer " + token();
      const resp = await fetch("v1/budgets", { headers, cache: "no-store" });
      if (resp.status === 401) {
        if (token()) sessionStorage.removeItem(TOKEN_KEY);
        $("login").hidden = false;
        $("forget").hidden = true;
        setStatus(headers.authorization ? "the token was refused" : "needs an admin token", true);
        $("token").focus();
        return;
      }
      const body = await resp.json();
      if (!resp.ok) throw new Error(body.error ? body.error.message : resp.statusText);
      $("login").hidden = true;
      $("forget").hidden = !token();
      state.rows = body.budgets;
      document.body.classList.remove("stale");
      renderFilters();
      render();
      setStatus("updated " + new Date().toLocaleTimeString() + (body.truncated ? " · list truncated" : ""), false);
    } catch (e) {
      document.body.classList.add("stale");
      setStatus("cannot read budgets: " + e.message, true);
    } finally {
      state.loading = false;
    }
  }

  function schedule() {
    clearInterval(state.timer);
    const every = Number($("refresh").value);
    if (every > 0) state.timer = setInterval(refresh, every * 1000);
  }

  // ---- wiring ----
  for (const [k, v] of new URLSearchParams(location.search)) if (v) state.filters[k] = v;
  for (const th of document.querySelectorAll("th[data-sort]")) {
    th.addEventListener("click", () => {
      const k = th.dataset.sort;
      state.sort = { key: k, dir: state.sort.key === k ? -state.sort.dir : k === "budget" || k === "scope" || k === "period" || k === "reset" || k === "exhaust" ? 1 : -1 };
      render();
    });
  }
  $("search").addEventListener("input", (e) => {
    state.search = e.target.value;
    render();
  });
  $("refresh").addEventListener("change", schedule);
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    refresh();
  });
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    state.rows = [];
    render();
    refresh();
  });
  refresh();
  schedule();
})();
