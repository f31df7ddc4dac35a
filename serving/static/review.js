/* The officer page: the review queue on the left, one complaint at a time on the right.
 *
 * Plain browser JavaScript, no build step. Talks to the review API (/v1/review/...) with the
 * officer's API key, kept in sessionStorage for this tab only and sent as a Bearer token.
 * All text from the server is put in the page with textContent, never as HTML.
 */
(() => {
  "use strict";

  const KEY_STORAGE = "huying.apiKey";
  const FILTER_STORAGE = "huying.reviewFilters";
  const QUEUE_PAGE = 100;
  const REFRESH_MS = 30_000;
  const RENEW_MS = 10 * 60_000; // a claim lasts 30 minutes: renew it while the item is open
  const DRAFT_DELAY_MS = 800;
  const SOON_MS = 4 * 3600_000;
  const LOW_CONFIDENCE = 0.5;

  const REASONS = { low_confidence: "置信度低", audit: "标签核查", spot_check: "抽查", manual: "人工送审" };
  const KINDS = { accept: "接受建议", correct: "更正", not_a_complaint: "非投诉", split: "拆分" };
  const ACTIONS = {
    "review_item.enqueued": "进入审核队列",
    "review_item.claimed": "领取",
    "review_item.released": "放回队列",
    "review_item.done": "办结",
    "review_item.closed_by_feedback": "由业务系统反馈办结",
    "response.draft_saved": "保存草稿",
    "response.submitted": "提交",
    "response.discarded": "草稿作废",
    "response.feedback": "业务系统反馈",
  };
  const HEAD_NAMES = { category: "分类", subcategory: "子类", department: "承办部门" };

  const $ = (id) => document.getElementById(id);
  const state = {
    key: null,
    entries: [], // the duty list: [{category, subcategory, key, department, ...}]
    byKey: new Map(),
    queue: [],
    total: 0,
    item: null, // the complaint on the right (ReviewItemPublic)
    choice: null, // the officer's correction: {category, subcategory, department}
    busy: false,
    picker: { results: [], index: -1 },
    draftTimer: null,
    timers: [],
  };

  // ------------------------------------------------------------------ small helpers

  function h(tag, attrs = {}, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") el.className = value;
      else if (name === "dataset") Object.assign(el.dataset, value);
      else if (name === "style") Object.assign(el.style, value);  // CSSOM: allowed by the CSP
      else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
      else el.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  const pad = (n) => String(n).padStart(2, "0");
  function fmtTime(iso, seconds = false) {
    if (!iso) return "—";
    const d = new Date(iso);
    const s = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
    return seconds ? `${s}:${pad(d.getSeconds())}` : s;
  }
  function duration(ms) {
    const minutes = Math.max(1, Math.round(ms / 60_000));
    if (minutes < 60) return `${minutes} 分钟`;
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return minutes % 60 ? `${hours} 小时 ${minutes % 60} 分` : `${hours} 小时`;
    return `${Math.floor(hours / 24)} 天 ${hours % 24} 小时`;
  }
  function dueInfo(iso) {
    const ms = new Date(iso).getTime() - Date.now();
    if (ms < 0) return { text: `已超时 ${duration(-ms)}`, cls: "due overdue" };
    return { text: `剩余 ${duration(ms)}`, cls: ms < SOON_MS ? "due soon" : "due" };
  }
  const percent = (c) => Math.round((Number(c) || 0) * 100);
  function bar(confidence) {
    const p = percent(confidence);
    return h("span", { class: confidence < LOW_CONFIDENCE ? "bar low" : "bar", "aria-hidden": "true" },
      h("span", { style: { width: `${p}%` } }));
  }
  const subName = (key) => (key && key.includes("/") ? key.slice(key.indexOf("/") + 1) : key || "");
  const catOf = (key) => (key && key.includes("/") ? key.slice(0, key.indexOf("/")) : "");
  function labelText(head, label) {
    if (!label) return "—";
    return head === "subcategory" ? `${catOf(label)} › ${subName(label)}` : label;
  }
  const suggested = (head) => (state.item && state.item.suggestion[head] ? state.item.suggestion[head].label : null);

  let toastTimer = null;
  function toast(message) {
    const el = $("toast");
    el.textContent = message;
    el.classList.add("show");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => el.classList.remove("show"), 2500);
  }

  // ------------------------------------------------------------------ the API

  class ApiError extends Error {
    constructor(status, code, message, field) {
      super(message);
      this.status = status;
      this.code = code;
      this.field = field || null;
    }
  }

  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${state.key}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (_) {
      throw new ApiError(0, "network", "无法连接服务器，请检查网络后重试");
    }
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      const err = (data && data.error) || {};
      const e = new ApiError(response.status, err.code || `http_${response.status}`,
        err.message || `请求失败（HTTP ${response.status}）`, err.field);
      if (response.status === 401) signedOut("API 密钥无效或已吊销，请重新输入。");
      throw e;
    }
    return data;
  }

  /** A refusal in words an officer can act on; the server's own message follows. */
  function describe(e) {
    const prefix = {
      0: "",
      400: "请求无法解析：",
      401: "未登录或密钥无效：",
      403: "此密钥没有审核权限：",
      404: "找不到该工单：",
      409: "该工单已被他人领取或已办结：",
      413: "内容过长：",
      422: e.field ? `输入有误（${e.field}）：` : "输入有误：",
      503: "服务暂不可用，请稍后重试：",
    }[e.status];
    return `${prefix === undefined ? "出错了：" : prefix}${e.message}`;
  }

  function queryString(extra = {}) {
    const params = new URLSearchParams();
    const f = currentFilters();
    for (const [k, v] of Object.entries({ ...f, ...extra })) if (v !== "" && v !== null && v !== undefined) params.set(k, v);
    const s = params.toString();
    return s ? `?${s}` : "";
  }

  // ------------------------------------------------------------------ sign in / out

  function showLogin(message = "") {
    $("app").hidden = true;
    $("logout").hidden = true;
    $("who").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message;
    $("key-input").value = "";
    $("key-input").focus();
  }

  function signedOut(message) {
    state.key = null;
    sessionStorage.removeItem(KEY_STORAGE);
    state.timers.forEach(clearInterval);
    state.timers = [];
    showLogin(message);
  }

  async function login(key) {
    state.key = key;
    try {
      await api("GET", "/v1/review/mine");
    } catch (e) {
      state.key = null;
      showLogin(e.status === 401 ? "API 密钥无效或已吊销，请检查后重新输入。" : describe(e));
      return;
    }
    sessionStorage.setItem(KEY_STORAGE, key);
    await start();
  }

  async function logout() {
    if (state.item) await api("POST", `/v1/review/items/${state.item.id}/release`).catch(() => null);
    state.item = null;
    signedOut("已退出。");
  }

  // ------------------------------------------------------------------ start

  async function start() {
    $("login").hidden = true;
    $("app").hidden = false;
    $("logout").hidden = false;
    const keyId = (state.key.split("_")[1] || "").slice(0, 8);
    $("who").textContent = `密钥 ${keyId}`;
    $("who").hidden = false;
    try {
      await loadTaxonomy();
      restoreFilters();
      await refreshQueue();
      const mine = await api("GET", "/v1/review/mine");
      if (mine.length) await show(mine[0].id);
      else await next();
    } catch (e) {
      if (e instanceof ApiError && e.status !== 401) $("queue-error").textContent = describe(e);
      else if (!(e instanceof ApiError)) throw e;
    }
    state.timers.push(setInterval(() => {
      if (document.visibilityState === "visible" && !state.busy) refreshQueue().catch(() => null);
    }, REFRESH_MS));
    state.timers.push(setInterval(renewClaim, RENEW_MS));
  }

  async function loadTaxonomy() {
    const t = await api("GET", "/v1/taxonomy");
    state.entries = t.entries.map((e) => ({
      ...e,
      key: `${e.category}/${e.subcategory}`,
      haystack: `${e.category} ${e.subcategory} ${e.department} ${e.description}`.toLowerCase(),
    }));
    state.byKey = new Map(state.entries.map((e) => [e.key, e]));
    const fill = (select, values, first) => {
      select.replaceChildren(h("option", { value: "" }, first), ...values.map((v) => h("option", { value: v }, v)));
    };
    fill($("f-department"), t.departments, "全部部门");
    fill($("f-category"), t.categories, "全部分类");
    fill($("c-department"), t.departments, "（沿用建议）");
    $("entry-options").replaceChildren(...state.entries.map((e) => h("option", { value: e.key }, e.department || "")));
  }

  // ------------------------------------------------------------------ the queue

  function currentFilters() {
    return {
      department: $("f-department").value,
      category: $("f-category").value,
      channel: $("f-channel").value.trim(),
    };
  }

  function restoreFilters() {
    let saved = {};
    try {
      saved = JSON.parse(localStorage.getItem(FILTER_STORAGE) || "{}");
    } catch (_) {
      saved = {};
    }
    for (const name of ["department", "category", "channel"]) {
      const el = $(`f-${name}`);
      if (saved[name] && (el.tagName !== "SELECT" || [...el.options].some((o) => o.value === saved[name]))) el.value = saved[name];
    }
  }

  async function filtersChanged() {
    localStorage.setItem(FILTER_STORAGE, JSON.stringify(currentFilters()));
    await refreshQueue();
    if (!state.item) await next();
  }

  async function refreshQueue() {
    try {
      const page = await api("GET", `/v1/review/queue${queryString({ limit: QUEUE_PAGE })}`);
      state.queue = page.items;
      state.total = page.total;
      $("queue-error").textContent = "";
    } catch (e) {
      if (e.status !== 401) $("queue-error").textContent = describe(e);
      return;
    }
    renderQueue();
  }

  function queueEntry(item, current) {
    const due = dueInfo(item.due_at);
    const label = item.subcategory ? subName(item.subcategory) : item.category || "（无建议）";
    return h("li", {},
      h("button", {
        type: "button", class: "q-item", "aria-current": current ? "true" : null,
        dataset: { id: item.id },
        "aria-label": `${label}，置信度 ${percent(item.confidence)}%，${due.text}${current ? "，正在处理" : ""}`,
        onclick: () => switchTo(item.id),
      },
      h("span", { class: "q-label" }, current ? "▶ " : "", label),
      h("span", { class: "q-conf" }, bar(item.confidence), `${percent(item.confidence)}%`),
      h("span", { class: "q-text" }, item.text),
      h("span", { class: "q-foot" },
        h("span", { class: due.cls }, due.text),
        item.department ? h("span", {}, item.department) : null,
        item.channel ? h("span", {}, item.channel) : null)));
  }

  function renderQueue() {
    const list = $("queue-list");
    const current = state.item;
    const rows = [];
    const inHand = current && current.status !== "done";
    if (inHand) rows.push(queueEntry(current, true));
    for (const item of state.queue) if (!current || item.id !== current.id) rows.push(queueEntry(item, false));
    if (!rows.length) rows.push(h("li", { class: "q-empty" }, "没有待审工单"));
    list.replaceChildren(...rows);
    // the queue's total leaves out the item this officer has claimed; the list shows it first
    const claimedHere = inHand && !state.queue.some((i) => i.id === current.id) ? 1 : 0;
    $("queue-count").textContent = `共 ${state.total + claimedHere} 条待审`;
    const channels = new Set(state.queue.map((i) => i.channel).filter(Boolean));
    $("channel-options").replaceChildren(...[...channels].map((c) => h("option", { value: c })));
  }

  // ------------------------------------------------------------------ moving between items

  async function guarded(fn) {
    if (state.busy) return;
    state.busy = true;
    document.body.setAttribute("aria-busy", "true");
    $("action-error").textContent = "";
    try {
      await fn();
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      if (e.status !== 401) $("action-error").textContent = describe(e);
      if (e.status === 409) refreshQueue().catch(() => null);
    } finally {
      state.busy = false;
      document.body.removeAttribute("aria-busy");
    }
  }

  /** Claim the most urgent free item matching the filters. */
  async function next() {
    const item = await api("POST", `/v1/review/claim-next${queryString()}`);
    if (item === null) {
      showEmpty();
    } else {
      await show(item.id);
    }
    await refreshQueue();
  }

  function showEmpty() {
    state.item = null;
    state.choice = null;
    $("current").hidden = true;
    $("empty").hidden = false;
    renderQueue();
  }

  async function show(id) {
    const item = await api("GET", `/v1/review/items/${id}`);
    state.item = item;
    const draft = item.draft && item.draft.kind === "correct" ? item.draft : null;
    state.choice = draft ? { category: draft.category, subcategory: draft.subcategory, department: draft.department } : null;
    $("c-note").value = item.draft && item.draft.note ? item.draft.note : "";
    $("picker-input").value = "";
    $("c-status").textContent = draft ? `已恢复草稿（${fmtTime(draft.updated_at)}）` : "";
    $("action-error").textContent = "";
    if (item.claimed_by) $("who").textContent = `审核员 ${item.claimed_by}`;
    renderItem();
    renderQueue();
    const active = document.activeElement;
    if (!active || !active.closest || !active.closest("#filters, .picker, .choice")) $("item").focus({ preventScroll: true });
    window.scrollTo({ top: 0 });
  }

  /** Work on `id` instead of the current item: claim it first, then give the current one back. */
  async function switchTo(id) {
    if (state.item && state.item.id === id) return;
    await guarded(async () => {
      const previous = state.item;
      await api("POST", `/v1/review/items/${id}/claim`);
      if (previous) await api("POST", `/v1/review/items/${previous.id}/release`).catch(() => null);
      await show(id);
      await refreshQueue();
    });
  }

  /** N: give this one back and take the next one in the list (not the same one again). */
  async function skip() {
    if (!state.item) return guarded(next);
    const current = state.item.id;
    const candidates = state.queue.filter((i) => i.id !== current);
    await guarded(async () => {
      for (const candidate of candidates) {
        try {
          await api("POST", `/v1/review/items/${candidate.id}/claim`);
        } catch (e) {
          if (e.status === 409) continue; // taken meanwhile: try the one after
          throw e;
        }
        await api("POST", `/v1/review/items/${current}/release`).catch(() => null);
        await show(candidate.id);
        await refreshQueue();
        return;
      }
      toast("没有其他待审工单");
    });
  }

  async function release() {
    if (!state.item) return;
    await guarded(async () => {
      await api("POST", `/v1/review/items/${state.item.id}/release`);
      toast("已放回队列");
      state.item = null;
      showEmpty();
      await refreshQueue();
      $("empty").querySelector("h2").textContent = "已放回队列";
    });
  }

  async function renewClaim() {
    if (!state.item || state.busy) return;
    try {
      await api("POST", `/v1/review/items/${state.item.id}/claim`);
    } catch (e) {
      if (e.status !== 401) $("action-error").textContent = describe(e);
    }
  }

  // ------------------------------------------------------------------ answering

  async function submit(answer, { onDone } = {}) {
    if (!state.item) return;
    const item = state.item;
    await guarded(async () => {
      clearTimeout(state.draftTimer);
      const saved = await api("POST", `/v1/review/items/${item.id}/submit`, answer);
      if (onDone) onDone();
      const what = saved.kind === "accept" || saved.kind === "correct"
        ? `：${labelText("subcategory", saved.subcategory) !== "—" ? labelText("subcategory", saved.subcategory) : saved.category || ""}` : "";
      toast(`已提交 ${KINDS[saved.kind] || saved.kind}${what}`);
      state.item = null;
      await next();
    });
  }

  const accept = () => submit({ kind: "accept", note: noteValue() });
  const notComplaint = () => submit({ kind: "not_a_complaint", note: noteValue() });
  const noteValue = () => $("c-note").value.trim() || null;

  function correctionBody() {
    const c = state.choice;
    if (!c || (!c.category && !c.subcategory && !c.department)) return null;
    const body = { kind: "correct", note: noteValue() };
    if (c.category) body.category = c.category;
    if (c.subcategory) body.subcategory = c.subcategory;
    if (c.department) body.department = c.department;
    const same = (body.category || suggested("category")) === suggested("category")
      && (body.subcategory || suggested("subcategory")) === suggested("subcategory")
      && (body.department || suggested("department")) === suggested("department");
    return same ? { kind: "accept", note: body.note } : body;
  }

  async function submitCorrection() {
    if (!state.item) return;
    const body = correctionBody();
    if (!body) {
      $("c-status").textContent = "请先在职责清单中选择子类，或选择承办部门。";
      $("picker-input").focus();
      return;
    }
    await submit(body);
  }

  function saveDraftSoon() {
    clearTimeout(state.draftTimer);
    const item = state.item;
    const body = correctionBody();
    if (!item || !body) return;
    state.draftTimer = setTimeout(async () => {
      if (!state.item || state.item.id !== item.id) return;
      try {
        const saved = await api("PUT", `/v1/review/items/${item.id}/draft`, body);
        if (state.item && state.item.id === item.id) $("c-status").textContent = `草稿已保存（${fmtTime(saved.updated_at, true)}）`;
      } catch (e) {
        if (e.status !== 401) $("c-status").textContent = `草稿未保存：${describe(e)}`;
      }
    }, DRAFT_DELAY_MS);
  }

  /** Choosing a subcategory sets its category and the duty list's default department. */
  function chooseEntry(entry) {
    state.choice = {
      category: entry.category,
      subcategory: entry.key,
      department: entry.department || (state.choice && state.choice.department) || null,
    };
    $("picker-input").value = `${entry.category} › ${entry.subcategory}`;
    closePicker();
    renderChoice();
    saveDraftSoon();
  }

  function chooseLabel(head, label) {
    if (head === "subcategory") {
      const entry = state.byKey.get(label);
      if (entry) return chooseEntry(entry);
      state.choice = { ...(state.choice || {}), category: catOf(label), subcategory: label };
    } else if (head === "category") {
      const keep = state.choice && state.choice.subcategory && catOf(state.choice.subcategory) === label;
      state.choice = { ...(state.choice || {}), category: label, subcategory: keep ? state.choice.subcategory : null };
    } else {
      state.choice = { ...(state.choice || {}), department: label };
    }
    renderChoice();
    saveDraftSoon();
  }

  function pickSuggestion(rank) {
    const s = state.item && state.item.suggestion.subcategory;
    if (!s || !s.top[rank - 1]) return;
    chooseLabel("subcategory", s.top[rank - 1].label);
    $("submit-correct").focus();
  }

  // ------------------------------------------------------------------ the picker

  function searchEntries(query) {
    const tokens = query.trim().toLowerCase().split(/\s+|›|\//).filter(Boolean);
    if (!tokens.length) return state.entries.slice(0, 60);
    return state.entries.filter((e) => tokens.every((t) => e.haystack.includes(t))).slice(0, 60);
  }

  function openPicker() {
    const input = $("picker-input");
    state.picker.results = searchEntries(input.value.includes("›") ? "" : input.value);
    state.picker.index = state.picker.results.length ? 0 : -1;
    renderPicker();
  }

  function closePicker() {
    $("picker-list").hidden = true;
    $("picker-input").setAttribute("aria-expanded", "false");
    $("picker-input").removeAttribute("aria-activedescendant");
  }

  function renderPicker() {
    const list = $("picker-list");
    const input = $("picker-input");
    const { results, index } = state.picker;
    if (!results.length) {
      list.replaceChildren(h("li", { class: "p-none", role: "option", "aria-disabled": "true" }, "没有匹配的职责清单条目"));
    } else {
      list.replaceChildren(...results.map((e, i) => h("li", {
        id: `pick-${i}`, role: "option", "aria-selected": i === index ? "true" : "false",
        onmousedown: (ev) => { ev.preventDefault(); chooseEntry(e); $("submit-correct").focus(); },
      }, h("span", {}, `${e.category} › ${e.subcategory}`), h("span", { class: "p-dept" }, e.department || ""))));
    }
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    if (index >= 0) {
      input.setAttribute("aria-activedescendant", `pick-${index}`);
      const el = $(`pick-${index}`);
      if (el) el.scrollIntoView({ block: "nearest" });
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  }

  function pickerKeys(ev) {
    const { results } = state.picker;
    const open = !$("picker-list").hidden;
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      if (!open) return openPicker();
      if (!results.length) return;
      const step = ev.key === "ArrowDown" ? 1 : -1;
      state.picker.index = (state.picker.index + step + results.length) % results.length;
      renderPicker();
    } else if (ev.key === "Enter" && !ev.ctrlKey && !ev.metaKey) {
      ev.preventDefault();
      if (open && state.picker.index >= 0) {
        chooseEntry(results[state.picker.index]);
        $("submit-correct").focus();
      }
    } else if (ev.key === "Escape") {
      ev.preventDefault();
      if (open) closePicker();
      else ev.target.blur();
    }
  }

  // ------------------------------------------------------------------ rendering the item

  function renderItem() {
    const item = state.item;
    $("empty").hidden = true;
    $("current").hidden = false;
    $("i-complaint").textContent = item.complaint_id ? `#${item.complaint_id}` : `（审核项 ${item.id}）`;
    const due = dueInfo(item.due_at);
    $("i-due").textContent = due.text;
    $("i-due").className = due.cls;
    $("i-channel").textContent = item.channel || "—";
    $("i-received").textContent = fmtTime(item.received_at);
    $("i-due-at").textContent = fmtTime(item.due_at);
    $("i-reason").textContent = REASONS[item.reason] || item.reason;
    $("i-model").textContent = item.model_version || "—";
    $("i-text").textContent = item.text;
    for (const head of ["category", "subcategory", "department"]) renderHead(head);
    renderChoice();
    renderSimilar();
    renderAudit();
  }

  function renderHead(head) {
    const list = $(`s-${head}`);
    const s = state.item.suggestion[head];
    if (!s) {
      list.replaceChildren(h("li", { class: "hint" }, "无建议"));
      return;
    }
    const chosen = state.choice && state.choice[head];
    list.replaceChildren(...s.top.map((t, i) => {
      const name = labelText(head, t.label);
      const shortcut = head === "subcategory" ? String(i + 1) : null;
      return h("li", {}, h("button", {
        type: "button",
        class: `sugg${i === 0 ? " first" : ""}${chosen === t.label ? " chosen" : ""}`,
        "aria-keyshortcuts": shortcut,
        "aria-label": `${HEAD_NAMES[head]}建议 ${i + 1}：${name}，置信度 ${percent(t.confidence)}%${i === 0 ? "（模型首选）" : ""}`,
        title: head === "subcategory" ? `按 ${i + 1} 选用` : "点击选用",
        onclick: () => chooseLabel(head, t.label),
      },
      h("span", { class: "rank" }, shortcut ? h("kbd", {}, shortcut) : `${i + 1}`),
      h("span", { class: "name" }, name),
      h("span", { class: "pct" }, `${percent(t.confidence)}%`),
      bar(t.confidence)));
    }));
  }

  /** The labels the item would get now: the officer's choice over the model's suggestion. */
  function effectiveLabels() {
    const c = state.choice || {};
    const category = c.category || suggested("category");
    let subcategory = c.subcategory || suggested("subcategory");
    // a new category without a subcategory drops the suggested one (as the server does)
    if (!c.subcategory && c.category && c.category !== suggested("category")) subcategory = null;
    return { category, subcategory, department: c.department || suggested("department") };
  }

  function renderChoice() {
    const c = state.choice || {};
    const now = effectiveLabels();
    $("c-category").textContent = now.category || "—";
    $("c-category").classList.toggle("changed", now.category !== suggested("category"));
    $("c-subcategory").textContent = now.subcategory ? subName(now.subcategory) : "—";
    $("c-subcategory").classList.toggle("changed", now.subcategory !== suggested("subcategory"));
    const select = $("c-department");
    const department = c.department || "";
    if (department && ![...select.options].some((o) => o.value === department)) {
      select.append(h("option", { value: department }, department));
    }
    select.value = department;
    select.options[0].textContent = suggested("department") ? `（沿用建议：${suggested("department")}）` : "（未指定）";
    select.classList.toggle("changed", now.department !== suggested("department"));
    if (state.item) {
      for (const head of ["category", "subcategory", "department"]) {
        const s = state.item.suggestion[head];
        $(`s-${head}`).querySelectorAll("button.sugg").forEach((btn, i) => {
          btn.classList.toggle("chosen", !!state.choice && !!s && s.top[i].label === now[head]);
        });
      }
    }
    renderDuty(now.subcategory, !!state.choice);
  }

  function renderDuty(subcategoryKey, chosenByOfficer) {
    const entry = (subcategoryKey && state.byKey.get(subcategoryKey)) || (!chosenByOfficer && state.item && state.item.duty) || null;
    $("duty-which").textContent = chosenByOfficer ? "（当前选择）" : "（模型建议）";
    const dl = $("duty");
    if (!entry) {
      dl.replaceChildren(h("dt", {}, "条目"), h("dd", {}, subcategoryKey ? "职责清单中没有该子类" : "尚未选择子类"));
      return;
    }
    const row = (name, value) => [h("dt", {}, name), h("dd", {}, value || "—")];
    dl.replaceChildren(
      ...row("分类", entry.category),
      ...row("子类", entry.subcategory),
      ...row("承办部门", entry.department),
      ...row("办理时限", timeLimit(entry.time_limit)),
      ...row("法律依据", entry.legal_basis),
      ...(entry.description ? row("说明", entry.description) : []));
  }

  function timeLimit(value) {
    const m = /^(\d+(?:\.\d+)?)(min|wd|h|d)$/.exec(value || "");
    if (!m) return value || "";
    return `${m[1]} ${{ min: "分钟", h: "小时", d: "天", wd: "个工作日" }[m[2]]}`;
  }

  function renderSimilar() {
    const cases = state.item.similar || [];
    $("similar").replaceChildren(...(cases.length ? cases.map((c) => h("li", {},
      h("b", {}, `#${c.id} `),
      h("span", { class: "sim" }, `${c.kind === "exact" ? "完全重复" : "相似"} ${percent(c.similarity)}% `),
      c.text ? h("span", {}, c.text.length > 80 ? `${c.text.slice(0, 80)}…` : c.text) : null))
      : [h("li", { class: "hint" }, "暂无相似的已登记工单")]));
  }

  function renderAudit() {
    const entries = state.item.audit || [];
    $("audit").replaceChildren(...entries.map((e) => {
      const after = e.after || {};
      let detail = "";
      if (e.action === "response.submitted" || e.action === "response.draft_saved") {
        detail = `：${KINDS[after.kind] || after.kind || ""} ${[after.category, subName(after.subcategory), after.department].filter(Boolean).join(" / ")}`;
      }
      return h("li", {}, `${fmtTime(e.at, true)} `, h("b", {}, e.actor), ` ${ACTIONS[e.action] || e.action}${detail}`);
    }));
  }

  // ------------------------------------------------------------------ split

  function splitPart(n) {
    const id = `split-${Date.now()}-${n}`;
    return h("li", {},
      h("label", { for: `${id}-sub` }, `第 ${n} 件：子类`),
      h("input", { id: `${id}-sub`, class: "split-sub", list: "entry-options", autocomplete: "off", placeholder: "输入关键词，选择“分类/子类”" }),
      h("label", { for: `${id}-text` }, "原文片段（可选）"),
      h("textarea", { id: `${id}-text`, class: "split-text", rows: "2" }));
  }

  function openSplit() {
    if (!state.item) return;
    $("split-parts").replaceChildren(splitPart(1), splitPart(2));
    $("split-error").textContent = "";
    $("split").showModal();
    $("split-parts").querySelector("input").focus();
  }

  async function submitSplit(ev) {
    ev.preventDefault();
    const parts = [...$("split-parts").children].map((li) => {
      const sub = li.querySelector(".split-sub").value.trim();
      const text = li.querySelector(".split-text").value.trim();
      const entry = state.byKey.get(sub);
      const part = { subcategory: sub };
      if (entry && entry.department) part.department = entry.department;
      if (text) part.text = text;
      return part;
    });
    const missing = parts.findIndex((p) => !p.subcategory);
    if (missing >= 0) {
      $("split-error").textContent = `第 ${missing + 1} 件还没有选择子类。`;
      $("split-parts").children[missing].querySelector("input").focus();
      return;
    }
    if (!state.item) return;
    const item = state.item;
    try {
      state.busy = true;
      const saved = await api("POST", `/v1/review/items/${item.id}/submit`, { kind: "split", parts, note: noteValue() });
      $("split").close();
      toast(`已提交 拆分为 ${saved.parts.length} 件`);
      state.item = null;
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      const where = /^parts\[(\d+)\]/.exec(e.field || "");
      $("split-error").textContent = where ? `第 ${Number(where[1]) + 1} 件：${describe(e)}` : describe(e);
      return;
    } finally {
      state.busy = false;
    }
    await guarded(next);
  }

  // ------------------------------------------------------------------ keyboard

  function anyDialogOpen() {
    return $("help").open || $("split").open;
  }

  function onKey(ev) {
    if ($("app").hidden) return;
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      if (!anyDialogOpen() && state.item) {
        ev.preventDefault();
        submitCorrection();
      }
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.isComposing) return;
    const target = ev.target;
    if (target && target.closest && target.closest("input, textarea, select, [contenteditable]")) return;
    if (anyDialogOpen()) {
      if (ev.key === "?" && $("help").open) $("help").close();
      return;
    }
    const actions = {
      "?": () => $("help").showModal(),
      "/": () => $("picker-input").focus(),
      c: () => $("picker-input").focus(),
      a: () => state.item && accept(),
      x: () => state.item && notComplaint(),
      s: () => openSplit(),
      n: () => skip(),
      r: () => refreshQueue(),
      1: () => pickSuggestion(1),
      2: () => pickSuggestion(2),
      3: () => pickSuggestion(3),
    };
    const action = actions[ev.key.length === 1 ? ev.key.toLowerCase() : ev.key];
    if (!action) return;
    ev.preventDefault();
    action();
  }

  // ------------------------------------------------------------------ wiring

  function init() {
    $("login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const key = $("key-input").value.trim();
      if (!key) {
        $("login-error").textContent = "请输入 API 密钥。";
        return;
      }
      login(key);
    });
    $("logout").addEventListener("click", logout);
    $("help-open").addEventListener("click", () => $("help").showModal());
    $("refresh").addEventListener("click", () => refreshQueue());
    for (const id of ["f-department", "f-category"]) $(id).addEventListener("change", filtersChanged);
    $("f-channel").addEventListener("change", filtersChanged);
    $("filters").addEventListener("submit", (ev) => { ev.preventDefault(); filtersChanged(); });
    $("accept").addEventListener("click", accept);
    $("correct").addEventListener("click", () => $("picker-input").focus());
    $("not-complaint").addEventListener("click", notComplaint);
    $("split-open").addEventListener("click", openSplit);
    $("skip").addEventListener("click", skip);
    $("release").addEventListener("click", release);
    $("empty-next").addEventListener("click", () => guarded(next));
    $("submit-correct").addEventListener("click", submitCorrection);
    $("c-department").addEventListener("change", (ev) => {
      state.choice = { ...(state.choice || {}), department: ev.target.value || null };
      renderChoice();
      saveDraftSoon();
    });
    const picker = $("picker-input");
    picker.addEventListener("input", openPicker);
    picker.addEventListener("focus", () => { if (picker.value.includes("›")) picker.select(); });
    picker.addEventListener("keydown", pickerKeys);
    picker.addEventListener("blur", () => setTimeout(closePicker, 100));
    $("split-form").addEventListener("submit", submitSplit);
    $("split-add").addEventListener("click", () => {
      const n = $("split-parts").children.length + 1;
      const li = splitPart(n);
      $("split-parts").append(li);
      li.querySelector("input").focus();
    });
    $("split-cancel").addEventListener("click", () => $("split").close());
    document.addEventListener("keydown", onKey);

    const key = sessionStorage.getItem(KEY_STORAGE);
    if (key) login(key);
    else showLogin();
  }

  init();
})();
