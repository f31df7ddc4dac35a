/* The officer page: the review queue on the left, one complaint at a time on the right.
 *
 * Plain browser JavaScript, no build step. Talks to the review API (/v1/review/...) and the hot
 * issues API (/v1/hot-issues/...) with the officer's API key, kept in sessionStorage for this tab
 * only and sent as a Bearer token. A second view (热点问题) ranks the hot issues of a period and
 * lets the officer split or merge them; a third (统计) shows the statistics of a period
 * (/v1/stats: summary, per department, volumes over time drawn as inline SVG) and downloads
 * its tables as CSV; a fourth (预警) lists the early warnings of a period (/v1/warnings), runs
 * the detection of a day and lets the officer acknowledge a warning with a note.
 * The item on the right offers the replies already given to its hot issue (秒回): the officer
 * adopts one, edits it and sends it as the `replied` event of the complaint's case.
 * All text from the server is put in the page with textContent, never as HTML.
 */
(() => {
  "use strict";

  const KEY_STORAGE = "huying.apiKey";
  const FILTER_STORAGE = "huying.reviewFilters";
  const VIEW_STORAGE = "huying.view";
  const HOT_TOP = 50;
  const STATS_TOP = 8; // values per dimension drawn in the breakdown chart; the rest is 其他
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
    view: "queue", // "queue", "hot", "stats" or "warnings"
    hot: { list: null, detail: null, busy: false, loaded: false },
    stats: { data: null, params: null, loaded: false, exporting: false },
    warnings: { list: null, params: null, loaded: false, busy: false, fresh: new Set() },
    reply: { drafts: new Map(), sent: new Map(), busy: false }, // per review item id
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
    if (!response.ok) throw await refusal(response);
    try {
      return await response.json();
    } catch (_) {
      return null;
    }
  }

  /** The ApiError of a refused request, from its `{"error": {code, message, field}}` body. */
  async function refusal(response) {
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    const err = (data && data.error) || {};
    const e = new ApiError(response.status, err.code || `http_${response.status}`,
      err.message || `请求失败（HTTP ${response.status}）`, err.field);
    if (response.status === 401) signedOut("API 密钥无效或已吊销，请重新输入。");
    return e;
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
    $("hot").hidden = true;
    $("stats").hidden = true;
    $("warnings").hidden = true;
    $("views").hidden = true;
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
    $("logout").hidden = false;
    $("views").hidden = false;
    const saved = sessionStorage.getItem(VIEW_STORAGE);
    showView(Object.hasOwn(VIEWS, saved) ? saved : "queue", { focus: false });
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
    fill($("w-department"), t.departments, "全部部门");
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
    renderReplies();
    renderCompose();
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

  // ------------------------------------------------------------------ views

  /** Each view: its <main>, its tab in the top bar, the page title and where focus goes. */
  const VIEWS = {
    queue: { main: "app", tab: "view-queue", title: "呼应 · 工单审核", focus: "item" },
    hot: { main: "hot", tab: "view-hot", title: "呼应 · 热点问题", focus: "hot" },
    stats: { main: "stats", tab: "view-stats", title: "呼应 · 统计", focus: "stats" },
    warnings: { main: "warnings", tab: "view-warnings", title: "呼应 · 预警", focus: "warnings" },
  };

  /** Show the review queue, the hot issues, the statistics or the warnings; all but the queue
   * load on first show. */
  function showView(view, { focus = true } = {}) {
    state.view = view;
    sessionStorage.setItem(VIEW_STORAGE, view);
    for (const [name, v] of Object.entries(VIEWS)) {
      $(v.main).hidden = name !== view;
      $(v.tab).setAttribute("aria-current", name === view ? "page" : "false");
    }
    document.title = VIEWS[view].title;
    if (view === "hot" && !state.hot.loaded) loadHot();
    if (view === "stats" && !state.stats.loaded) loadStats();
    if (view === "warnings" && !state.warnings.loaded) loadWarnings();
    if (focus) $(VIEWS[view].focus).focus({ preventScroll: true });
  }

  // ------------------------------------------------------------------ hot issues

  /** Like describe(), in words about hot issues rather than review items. */
  function describeHot(e) {
    const prefix = {
      404: "找不到该热点问题：",
      409: "该热点问题已被合并，请刷新后操作：",
      422: e.field === "complaint_ids" ? "所选投诉无法拆分：" : e.field === "into" ? "无法合并：" : null,
    }[e.status];
    return prefix ? `${prefix}${e.message}` : describe(e);
  }

  const fmtDay = (iso) => {
    const [, m, d] = String(iso).split("-");
    return `${Number(m)}月${Number(d)}日`;
  };

  function fmtRange(first, last) {
    const a = fmtTime(first);
    const b = fmtTime(last);
    if (a === b) return a;
    return a.slice(0, 10) === b.slice(0, 10) ? `${a} – ${b.slice(11)}` : `${a} – ${b}`;
  }

  function hotQuery() {
    const params = new URLSearchParams({ top: String(HOT_TOP) });
    const from = $("h-from").value;
    const to = $("h-to").value;
    const district = $("h-district").value.trim();
    if (from) params.set("from", from);
    if (to) params.set("to", to);
    if (district) params.set("district", district);
    return `?${params}`;
  }

  /** The trend as a sparkline (inline SVG), with the counts in words for screen readers. */
  function sparkline(trend, days, { width = 96, height = 24 } = {}) {
    const NS = "http://www.w3.org/2000/svg";
    const max = Math.max(1, ...trend);
    const step = trend.length > 1 ? (width - 4) / (trend.length - 1) : 0;
    const pts = trend.map((n, i) => [2 + i * step, height - 2 - (n / max) * (height - 5)]);
    const nonzero = trend.map((n, i) => [n, days[i]]).filter(([n]) => n > 0);
    const words = nonzero.length
      ? `${nonzero.map(([n, d]) => `${fmtDay(d)} ${n} 件`).join("，")}${nonzero.length < trend.length ? "，其余日期 0 件" : ""}`
      : "全部为 0";
    const label = `每日投诉数：${words}（${days.length ? `${days[0]} 至 ${days[days.length - 1]}` : ""}）`;
    const svg = document.createElementNS(NS, "svg");
    const attrs = (el, a) => { for (const [k, v] of Object.entries(a)) el.setAttribute(k, String(v)); return el; };
    attrs(svg, { class: "spark", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": label });
    const title = document.createElementNS(NS, "title");
    title.textContent = label;
    svg.append(title);
    const line = pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ");
    if (pts.length > 1) {
      svg.append(attrs(document.createElementNS(NS, "polygon"), {
        class: "spark-area", points: `${pts[0][0].toFixed(1)},${height - 2} ${line} ${pts[pts.length - 1][0].toFixed(1)},${height - 2}`,
      }));
      svg.append(attrs(document.createElementNS(NS, "polyline"), { class: "spark-line", points: line }));
    }
    const peak = trend.indexOf(Math.max(...trend));
    if (pts.length && trend[peak] > 0) {
      svg.append(attrs(document.createElementNS(NS, "circle"), { class: "spark-dot", cx: pts[peak][0].toFixed(1), cy: pts[peak][1].toFixed(1), r: 2 }));
    }
    return svg;
  }

  async function loadHot() {
    const from = $("h-from").value;
    const to = $("h-to").value;
    if (from && to && from > to) {
      $("hot-error").textContent = `起始日期（${from}）晚于截止日期（${to}），请调整后再查询。`;
      $("h-from").focus();
      return;
    }
    $("hot-query").disabled = true;
    try {
      const list = await api("GET", `/v1/hot-issues${hotQuery()}`);
      state.hot.list = list;
      state.hot.loaded = true;
      $("hot-error").textContent = "";
      if (!state.hot.busy) $("hd-error").textContent = ""; // a fresh look: an old refusal no longer applies
      if (!$("h-from").value) $("h-from").value = list.from;
      if (!$("h-to").value) $("h-to").value = list.to;
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      if (e.status !== 401) $("hot-error").textContent = describeHot(e);
      return;
    } finally {
      $("hot-query").disabled = false;
    }
    const open = state.hot.detail;
    if (open) { // it may have changed meanwhile (another officer, or the change just made)
      try {
        state.hot.detail = await api("GET", `/v1/hot-issues/${open.id}`);
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        if (e.status === 404) state.hot.detail = null;
      }
    }
    renderHotList();
    renderHotDetail();
  }

  function renderHotList() {
    const list = state.hot.list;
    const current = state.hot.detail ? state.hot.detail.id : null;
    const where = list.district ? `，${list.district}` : "";
    const shown = list.issues.length < list.total ? `，显示前 ${list.issues.length} 个` : "";
    $("hot-count").textContent = `${list.from} 至 ${list.to}${where}：共 ${list.total} 个热点问题${shown}`;
    if (!list.issues.length) {
      $("hot-rows").replaceChildren(h("tr", {}, h("td", { colspan: "8", class: "q-empty" }, "这段时间内没有热点问题")));
      return;
    }
    $("hot-rows").replaceChildren(...list.issues.map((issue) => {
      const selected = issue.id === current;
      const description = issue.description || "（无描述）";
      return h("tr", {
        class: selected ? "hot-row selected" : "hot-row", dataset: { id: issue.id },
        "aria-current": selected ? "true" : null,
        onclick: (ev) => { if (!ev.target.closest("button")) openIssue(issue.id); },
      },
      h("td", { class: "num rank" }, issue.rank),
      h("td", { class: "num heat" }, Number(issue.heat).toFixed(1)),
      h("td", { class: "num reports" }, issue.reports),
      h("td", { class: "trend" }, sparkline(issue.trend, list.days)),
      h("td", { class: "when" }, fmtRange(issue.first_reported, issue.last_reported)),
      h("td", { class: "place" }, issue.place || "—"),
      h("td", { class: "desc" }, h("button", {
        type: "button", class: "link", "aria-current": selected ? "true" : null,
        "aria-label": `查看热点问题 #${issue.id}（第 ${issue.rank} 名，${issue.reports} 件投诉）：${description}`,
        onclick: () => openIssue(issue.id),
      }, description)),
      h("td", { class: "dept" }, issue.department || "—"));
    }));
  }

  async function openIssue(id) {
    $("hd-error").textContent = "";
    try {
      state.hot.detail = await api("GET", `/v1/hot-issues/${id}`);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      if (e.status !== 401) {
        $("hd-empty").hidden = true;
        $("hd-body").hidden = false;
        $("hd-error").textContent = describeHot(e);
      }
      return;
    }
    renderHotList();
    renderHotDetail();
    $("hot-detail").focus({ preventScroll: true });
    $("hot-detail").scrollIntoView({ block: "nearest" });
  }

  function renderHotDetail() {
    const d = state.hot.detail;
    $("hd-empty").hidden = !!d;
    $("hd-body").hidden = !d;
    if (!d) return;
    $("hd-id").textContent = `#${d.id}`;
    const listed = state.hot.list && state.hot.list.issues.find((i) => i.id === d.id);
    $("hd-meta").textContent = [
      `建立于 ${fmtTime(d.opened_at)}`,
      `${d.complaints.length} 件投诉`,
      listed ? `热度 ${Number(listed.heat).toFixed(1)}（第 ${listed.rank} 名）` : null,
    ].filter(Boolean).join(" · ");
    if (d.merged_into) {
      $("hd-complaints").replaceChildren(h("li", { class: "hint" }, `该热点问题已合并到 #${d.merged_into}，其投诉都在那里。 `,
        h("button", { type: "button", class: "small", onclick: () => openIssue(d.merged_into) }, `查看 #${d.merged_into}`)));
    } else if (!d.complaints.length) {
      $("hd-complaints").replaceChildren(h("li", { class: "hint" }, "没有投诉"));
    } else {
      $("hd-complaints").replaceChildren(...d.complaints.map((c, i) => {
        const box = `hd-c-${i}`;
        const meta = [fmtTime(c.reported_at), c.channel, c.location, c.department].filter(Boolean).join(" · ");
        return h("li", {},
          h("input", { type: "checkbox", id: box, value: c.id, "aria-describedby": `${box}-text` }),
          h("label", { for: box }, h("b", {}, `#${c.id}`), h("span", { class: "hint" }, ` ${meta}`)),
          h("p", { id: `${box}-text`, class: "hd-text" }, c.text));
      }));
    }
    const others = state.hot.list ? state.hot.list.issues.filter((i) => i.id !== d.id) : [];
    const select = $("hd-into");
    select.replaceChildren(
      h("option", { value: "" }, others.length ? "选择目标热点问题" : "（列表中没有其他热点问题）"),
      ...others.map((i) => {
        const text = i.description.length > 24 ? `${i.description.slice(0, 24)}…` : i.description;
        return h("option", { value: String(i.id) }, `#${i.id} 第 ${i.rank} 名 · ${i.reports} 件 · ${text || "（无描述）"}`);
      }));
    select.disabled = !!d.merged_into || !others.length;
    updateSplit();
    updateMerge();
  }

  function checkedComplaints() {
    return [...$("hd-complaints").querySelectorAll("input[type=checkbox]:checked")].map((box) => box.value);
  }

  function updateSplit() {
    const d = state.hot.detail;
    const n = checkedComplaints().length;
    const total = d ? d.complaints.length : 0;
    let note = "";
    if (d && !d.merged_into) {
      if (total < 2) note = "只有一件投诉，无法拆分";
      else if (n === 0) note = "勾选投诉后可拆分为新的热点问题";
      else if (n === total) note = "不能全部拆出，至少留下一件";
      else note = `已选 ${n} 件`;
    }
    $("hd-selected").textContent = note;
    $("hd-split").disabled = state.hot.busy || !d || !!d.merged_into || n === 0 || n >= total;
  }

  function updateMerge() {
    const d = state.hot.detail;
    $("hd-merge").disabled = state.hot.busy || !d || !!d.merged_into || !$("hd-into").value;
  }

  async function hotChange(fn) {
    if (state.hot.busy) return;
    state.hot.busy = true;
    document.body.setAttribute("aria-busy", "true");
    $("hd-error").textContent = "";
    updateSplit();
    updateMerge();
    try {
      await fn();
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      if (e.status !== 401) $("hd-error").textContent = describeHot(e);
    } finally {
      state.hot.busy = false;
      document.body.removeAttribute("aria-busy");
      if (state.hot.list) {
        updateSplit();
        updateMerge();
      }
    }
  }

  function splitIssue() {
    const d = state.hot.detail;
    const ids = checkedComplaints();
    if (!d || !ids.length) return;
    return hotChange(async () => {
      const created = await api("POST", `/v1/hot-issues/${d.id}/split`, { complaint_ids: ids });
      toast(`已拆分：${ids.length} 件投诉移入新热点问题 #${created.id}`);
      state.hot.detail = created;
      await loadHot();
    });
  }

  function mergeIssue() {
    const d = state.hot.detail;
    const into = Number($("hd-into").value);
    if (!d || !into) return;
    return hotChange(async () => {
      const target = await api("POST", `/v1/hot-issues/${d.id}/merge`, { into });
      toast(`已将热点问题 #${d.id} 合并到 #${target.id}`);
      state.hot.detail = target;
      await loadHot();
    });
  }

  // ------------------------------------------------------------------ statistics

  const BY_NAMES = { day: "日", week: "周", month: "月" };
  const DIMENSION_NAMES = { category: "分类", subcategory: "子类", district: "区域", department: "部门" };
  const STATS_FIELDS = { from: "起始日期", to: "截止日期", by: "粒度", table: "表" };
  const TABLE_NAMES = { summary: "汇总", departments: "各部门", volumes: "投诉量", cases: "案件明细" };
  // distinguishable, and readable on white; 其他 is grey
  const PALETTE = ["#0b57d0", "#d97706", "#1e7a3c", "#b3261e", "#7c3aed", "#0e7490", "#be185d", "#4d7c0f"];
  const OTHERS_COLOUR = "#9aa3ad";
  const SVG_NS = "http://www.w3.org/2000/svg";

  /** A share (0–1) as a percentage with one decimal (half up); null as —. */
  const fmtShare = (v) => (v === null || v === undefined ? "—" : `${(Math.round(v * 1000) / 10).toFixed(1)}%`);
  /** Hours as the API gives them (at most 2 decimals); null as —. */
  const fmtHours = (v) => (v === null || v === undefined ? "—" : String(Math.round(v * 100) / 100));

  /** Like describe(), in words about the statistics' query. */
  function describeStats(e) {
    if (e.status === 422) {
      const field = STATS_FIELDS[e.field] || e.field;
      return `查询条件有误${field ? `（${field}）` : ""}：${e.message}`;
    }
    if (e.status === 404) return `找不到该统计表：${e.message}`;
    return describe(e);
  }

  /** The query in the form; empty dates are left to the server (the last 30 days). */
  function statsFormParams() {
    const params = { by: $("st-by").value };
    if ($("st-from").value) params.from = $("st-from").value;
    if ($("st-to").value) params.to = $("st-to").value;
    return params;
  }

  const parseDay = (iso) => new Date(`${iso}T00:00:00Z`);
  const isoDay = (d) => d.toISOString().slice(0, 10);

  function periodStart(iso, by) {
    const d = parseDay(iso);
    if (by === "week") d.setUTCDate(d.getUTCDate() - ((d.getUTCDay() + 6) % 7)); // Monday
    else if (by === "month") d.setUTCDate(1);
    return isoDay(d);
  }

  /** Every period of from..to (the first may start before `from`), as the API names them. */
  function periodsOf(from, to, by, volumes) {
    const out = [];
    const end = parseDay(to);
    for (let d = parseDay(periodStart(from, by)); d <= end;) {
      out.push(isoDay(d));
      if (by === "day") d.setUTCDate(d.getUTCDate() + 1);
      else if (by === "week") d.setUTCDate(d.getUTCDate() + 7);
      else d.setUTCMonth(d.getUTCMonth() + 1);
    }
    const known = new Set(out);
    const extra = volumes.map((v) => v.period).filter((p) => !known.has(p));
    return extra.length ? [...new Set([...out, ...extra])].sort() : out;
  }

  function periodLabel(iso, by, multiYear) {
    const [y, m] = iso.split("-");
    if (by === "month") return multiYear ? `${y}年${Number(m)}月` : `${Number(m)}月`;
    return multiYear ? `${y}年${fmtDay(iso)}` : fmtDay(iso);
  }

  function periodWords(iso, by) {
    if (by === "day") return iso;
    if (by === "week") {
      const end = parseDay(iso);
      end.setUTCDate(end.getUTCDate() + 6);
      return `${iso} 至 ${isoDay(end)} 这一周`;
    }
    const [y, m] = iso.split("-");
    return `${y} 年 ${Number(m)} 月`;
  }

  async function loadStats() {
    const params = statsFormParams();
    $("stats-query").disabled = true;
    try {
      const data = await api("GET", `/v1/stats?${new URLSearchParams(params)}`);
      state.stats.data = data;
      state.stats.params = { from: data.from, to: data.to, by: data.by };
      state.stats.loaded = true;
      $("stats-error").textContent = "";
      if (!$("st-from").value) $("st-from").value = data.from;
      if (!$("st-to").value) $("st-to").value = data.to;
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      if (e.status !== 401) $("stats-error").textContent = describeStats(e);
      if (e.status === 422 && (e.field === "from" || e.field === "to")) $(`st-${e.field}`).focus();
      return;
    } finally {
      $("stats-query").disabled = false;
    }
    renderStats();
  }

  function renderStats() {
    const d = state.stats.data;
    const s = d.summary;
    $("stats-count").textContent = `${d.from} 至 ${d.to}，按${BY_NAMES[d.by] || d.by}：共 ${s.complaints} 件投诉`
      + `（超期判定截至 ${fmtTime(d.as_of)}）`;
    $("sc-complaints").textContent = String(s.complaints);
    $("sc-complaints-note").textContent = `涉及 ${d.departments.length} 个承办部门`;
    $("sc-closed-share").textContent = fmtShare(s.closed_share);
    $("sc-closed-note").textContent = `已办结 ${s.closed} 件`;
    $("sc-median").textContent = fmtHours(s.close_hours_median);
    $("sc-p90").textContent = fmtHours(s.close_hours_p90);
    $("sc-overdue").textContent = String(s.overdue);
    $("sc-overdue-share").textContent = fmtShare(s.overdue_share);
    $("sc-overdue-note").textContent = `有办理时限的 ${s.with_time_limit} 件中`;
    $("sc-repeats").textContent = String(s.repeats);
    renderDepartments();
    renderCharts();
    $("export-note").textContent = `导出当前显示的统计：${d.from} 至 ${d.to}，按${BY_NAMES[d.by] || d.by}汇总`;
  }

  function departmentCells(row, header) {
    return [
      header ? h("th", { scope: "row", class: "dept" }, row.department) : h("td", { class: "dept" }, row.department),
      h("td", { class: "num complaints" }, row.complaints),
      h("td", { class: "num closed" }, row.closed),
      h("td", { class: "num closed-share" }, fmtShare(row.closed_share)),
      h("td", { class: "num median" }, fmtHours(row.close_hours_median)),
      h("td", { class: "num p90" }, fmtHours(row.close_hours_p90)),
      h("td", { class: "num limited" }, row.with_time_limit),
      h("td", { class: "num overdue" }, row.overdue),
      h("td", { class: "num overdue-share" }, fmtShare(row.overdue_share)),
      h("td", { class: "num repeats" }, row.repeats),
    ];
  }

  function renderDepartments() {
    const d = state.stats.data;
    $("dept-rows").replaceChildren(...(d.departments.length
      ? d.departments.map((row) => h("tr", { dataset: { department: row.department } }, departmentCells(row, true)))
      : [h("tr", {}, h("td", { colspan: "10", class: "q-empty" }, "这段时间内没有投诉"))]));
    $("dept-total").replaceChildren(...(d.departments.length > 1
      ? [h("tr", { class: "total" }, departmentCells({ ...d.summary, department: "全部部门" }, true))] : []));
  }

  function renderCharts() {
    if (!state.stats.data) return;
    renderTotalChart();
    renderDimensionChart();
  }

  function renderTotalChart() {
    const d = state.stats.data;
    const periods = periodsOf(d.from, d.to, d.by, d.volumes);
    const per = new Map(periods.map((p) => [p, 0]));
    // every complaint has one department (未知 if none): their sum is the period's total
    for (const v of d.volumes) if (v.dimension === "department") per.set(v.period, (per.get(v.period) || 0) + v.complaints);
    const values = periods.map((p) => per.get(p));
    const by = BY_NAMES[d.by] || d.by;
    const total = values.reduce((a, b) => a + b, 0);
    let words;
    if (periods.length <= 31) {
      const multiYear = d.from.slice(0, 4) !== d.to.slice(0, 4);
      words = periods.map((p, i) => `${periodLabel(p, d.by, multiYear)}${d.by === "week" ? "起" : ""} ${values[i]} 件`).join("，");
    } else {
      const peak = values.indexOf(Math.max(...values));
      words = `最多的是 ${periodWords(periods[peak], d.by)}（${values[peak]} 件）`;
    }
    const label = `每${by}投诉量柱状图，${d.from} 至 ${d.to}，共 ${total} 件，${periods.length} 个${by}：${words}`;
    $("chart-total-by").textContent = `（每${by}）`;
    $("chart-total").replaceChildren(stackedBars({
      periods, by: d.by, label, cls: "chart-total",
      series: [{ name: "投诉", values }],
      single: true,
    }));
  }

  function renderDimensionChart() {
    const d = state.stats.data;
    const dimension = $("st-dimension").value;
    const name = DIMENSION_NAMES[dimension];
    $("chart-dim-name").textContent = name;
    const periods = periodsOf(d.from, d.to, d.by, d.volumes);
    const index = new Map(periods.map((p, i) => [p, i]));
    const totals = new Map();
    const cells = new Map();
    for (const v of d.volumes) {
      if (v.dimension !== dimension) continue;
      totals.set(v.value, (totals.get(v.value) || 0) + v.complaints);
      if (!cells.has(v.value)) cells.set(v.value, periods.map(() => 0));
      cells.get(v.value)[index.get(v.period)] += v.complaints;
    }
    const ranked = [...totals.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const top = ranked.slice(0, STATS_TOP);
    const series = top.map(([value, n], i) => ({ name: value, total: n, colour: PALETTE[i], values: cells.get(value) }));
    const rest = ranked.slice(STATS_TOP);
    if (rest.length) {
      const values = periods.map((_, i) => rest.reduce((sum, [value]) => sum + cells.get(value)[i], 0));
      series.push({ name: `其他（${rest.length} 项）`, total: values.reduce((a, b) => a + b, 0), colour: OTHERS_COLOUR, values, others: true });
    }
    const by = BY_NAMES[d.by] || d.by;
    const label = series.length
      ? `按${name}的每${by}投诉量堆叠柱状图，${d.from} 至 ${d.to}，${periods.length} 个${by}；`
        + `${rest.length ? `前 ${STATS_TOP} 项` : `共 ${series.length} 项`}：${series.map((x) => `${x.name} 共 ${x.total} 件`).join("，")}`
      : `按${name}的每${by}投诉量：这段时间内没有投诉`;
    $("chart-dim").replaceChildren(stackedBars({ periods, by: d.by, label, cls: "chart-dim", series }));
    $("chart-dim-legend").replaceChildren(...series.map((x) => h("li", { class: x.others ? "others" : null },
      h("span", { class: "swatch", "aria-hidden": "true", style: { background: x.colour } }),
      h("span", { class: "legend-name" }, x.name),
      h("span", { class: "legend-count" }, `${x.total} 件`))));
  }

  /** A step of 1, 2 or 5 × 10^k giving about four gridlines up to `max` (counts: at least 1). */
  function niceStep(max) {
    const raw = Math.max(1, max / 4);
    const mag = 10 ** Math.floor(Math.log10(raw));
    return [1, 2, 5, 10].map((k) => k * mag).find((s) => s >= raw);
  }

  function svg(tag, attrs = {}, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
    for (const child of children.flat()) if (child !== null && child !== undefined) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return el;
  }

  /**
   * Bars per period (stacked when there are several series), drawn to the container's width, with
   * a y axis of counts and period labels; role=img with `label`, and a <title> per period.
   */
  function stackedBars({ periods, by, label, cls, series, single = false }) {
    const width = Math.max(320, Math.round($("chart-total").clientWidth || 640));
    const height = 240;
    const m = { top: 16, right: 10, bottom: 42, left: 44 };
    const plotW = width - m.left - m.right;
    const plotH = height - m.top - m.bottom;
    const totals = periods.map((_, i) => series.reduce((sum, s) => sum + s.values[i], 0));
    const step = niceStep(Math.max(0, ...totals));
    const yMax = Math.max(step, Math.ceil(Math.max(0, ...totals) / step) * step);
    const y = (n) => m.top + plotH - (n / yMax) * plotH;
    const band = plotW / Math.max(1, periods.length);
    const barW = Math.max(1, Math.min(48, band * 0.72));
    const multiYear = periods.length > 0 && periods[0].slice(0, 4) !== periods[periods.length - 1].slice(0, 4);
    const every = Math.max(1, Math.ceil(periods.length / Math.max(1, Math.floor(plotW / (multiYear ? 84 : 56)))));

    const root = svg("svg", {
      class: `chart-svg ${cls}`, viewBox: `0 0 ${width} ${height}`, width: "100%", height,
      role: "img", "aria-label": label, preserveAspectRatio: "xMinYMin meet",
    }, svg("title", {}, label));
    const grid = svg("g", { class: "axis y-axis" });
    for (let n = 0; n <= yMax; n += step) {
      grid.append(svg("line", { class: n === 0 ? "baseline" : "gridline", x1: m.left, x2: width - m.right, y1: y(n), y2: y(n) }),
        svg("text", { x: m.left - 6, y: y(n), dy: "0.32em", "text-anchor": "end" }, n));
    }
    grid.append(svg("text", { class: "axis-title", x: 0, y: 0, transform: `translate(12 ${m.top + plotH / 2}) rotate(-90)`, "text-anchor": "middle" }, "投诉件数"));
    root.append(grid);

    const bars = svg("g", { class: "bars" });
    periods.forEach((p, i) => {
      const x = m.left + i * band + (band - barW) / 2;
      const parts = series.filter((s) => s.values[i] > 0).map((s) => `${s.name} ${s.values[i]} 件`);
      const tip = `${periodWords(p, by)}：共 ${totals[i]} 件${!single && parts.length ? `（${parts.join("，")}）` : ""}`;
      const g = svg("g", { class: "period", "data-period": p, "data-total": totals[i] }, svg("title", {}, tip));
      if (single) {
        g.append(svg("rect", { class: "chart-bar", x: x.toFixed(1), width: barW.toFixed(1), y: y(totals[i]).toFixed(1),
          height: (m.top + plotH - y(totals[i])).toFixed(1) }));
      } else {
        let base = 0;
        for (const s of series) {
          const n = s.values[i];
          if (!n) continue;
          g.append(svg("rect", { class: "segment", "data-value": s.name, x: x.toFixed(1), width: barW.toFixed(1),
            y: y(base + n).toFixed(1), height: (y(base) - y(base + n)).toFixed(1), fill: s.colour }));
          base += n;
        }
      }
      if (totals[i] > 0 && barW >= 14) {
        g.append(svg("text", { class: "bar-value", x: (x + barW / 2).toFixed(1), y: (y(totals[i]) - 4).toFixed(1), "text-anchor": "middle" }, totals[i]));
      }
      if (i % every === 0) {
        g.append(svg("text", { class: "x-label", x: (m.left + i * band + band / 2).toFixed(1), y: m.top + plotH + 16, "text-anchor": "middle" },
          periodLabel(p, by, multiYear)));
      }
      bars.append(g);
    });
    root.append(bars);
    root.append(svg("text", { class: "axis-title", x: m.left + plotW / 2, y: height - 4, "text-anchor": "middle" },
      { day: "日期", week: "周（标注每周星期一）", month: "月份" }[by] || by));
    return root;
  }

  /** Download one table as CSV: the API needs the key, so fetch it and save the Blob. */
  async function exportCsv(table) {
    if (state.stats.exporting) return;
    const params = state.stats.params || statsFormParams();
    const buttons = [...$("stats-export").querySelectorAll("button[data-table]")];
    state.stats.exporting = true;
    buttons.forEach((b) => { b.disabled = true; });
    $("stats-error").textContent = "";
    try {
      let response;
      try {
        response = await fetch(`/v1/stats/${encodeURIComponent(table)}.csv?${new URLSearchParams(params)}`,
          { headers: { Authorization: `Bearer ${state.key}` } });
      } catch (_) {
        throw new ApiError(0, "network", "无法连接服务器，请检查网络后重试");
      }
      if (!response.ok) throw await refusal(response);
      const blob = await response.blob();
      const disposition = /filename="?([^";]+)"?/.exec(response.headers.get("Content-Disposition") || "");
      const name = disposition ? disposition[1] : `${table}-${params.from || ""}-${params.to || ""}.csv`;
      const url = URL.createObjectURL(blob);
      const link = h("a", { href: url, download: name, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      toast(`已导出${TABLE_NAMES[table] || table}：${name}`);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      if (e.status !== 401) $("stats-error").textContent = `导出失败：${describeStats(e)}`;
    } finally {
      state.stats.exporting = false;
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  // ------------------------------------------------------------------ instant replies (秒回)

  const VIA_NAMES = { same_event: "同一事件", hot_issue: "同一热点问题" };
  const CASE_STATES = { routed: "已分派", assigned: "已交办", replied: "已答复", closed: "已办结", reopened: "已重新办理" };
  const REPLY_FIELDS = { reply: "答复内容", at: "答复时间", event_id: "事件编号", kind: "事件类型" };
  /** Days with at most two decimals, without trailing zeros. */
  const fmtDays = (v) => String(Math.round(Number(v) * 100) / 100);

  /** Like describe(), in words about posting a reply to the complaint's case. */
  function describeReply(e) {
    if (e.status === 409) return `无法发送答复，案件当前状态不允许：${e.message}`;
    if (e.status === 404) return `找不到该投诉：${e.message}`;
    if (e.status === 422) {
      const field = REPLY_FIELDS[e.field] || e.field;
      return `答复有误${field ? `（${field}）` : ""}：${e.message}`;
    }
    return describe(e);
  }

  /** The replies already given to the item's hot issue, with their quality as badges. */
  function renderReplies() {
    const replies = state.item.replies || [];
    $("replies-card").hidden = !replies.length;
    $("replies").replaceChildren(...replies.map((r, i) => {
      const q = r.quality || {};
      const id = `reply-${i}`;
      const badges = [
        ["相关度", `${percent(q.relevance)}%`, "答复与本工单内容的相关程度"],
        ["完整性", `${percent(q.completeness)}%`, "有无问候、处理情况、结束语或联系方式，篇幅是否充分（100 字）"],
        ["可解释性", `${percent(q.interpretability)}%`, "有无引用法规条文、说明依据、给出理由"],
        q.timeliness_days === null || q.timeliness_days === undefined ? null
          : ["时效", `${fmtDays(q.timeliness_days)} 天`, "从原投诉受理到答复所用的天数"],
      ].filter(Boolean);
      const meta = [fmtTime(r.replied_at), r.department,
        `${VIA_NAMES[r.via] || r.via}${r.similarity === null || r.similarity === undefined ? "" : ` ${percent(r.similarity)}%`}`]
        .filter(Boolean).join(" · ");
      return h("li", { class: "reply", dataset: { source: r.source_complaint_id } },
        h("p", { id: `${id}-head`, class: "reply-head" },
          h("b", {}, `#${r.source_complaint_id}`), " 的答复", h("span", { class: "hint" }, ` ${meta}`)),
        h("p", { class: "reply-text" }, r.reply),
        h("ul", { class: "badges", "aria-label": "答复质量" }, badges.map(([name, value, tip]) =>
          h("li", { class: "badge", title: tip }, `${name} `, h("b", {}, value)))),
        hasCase() ? h("button", {
          type: "button", class: "small adopt", "aria-describedby": `${id}-head`, onclick: () => adoptReply(r),
        }, "采用并编辑") : null);
    }));
  }

  const hasCase = () => !!(state.item && state.item.complaint_id && state.item.registered);

  /** The reply composer: only for an item whose complaint is registered (it has a case). */
  function renderCompose() {
    const item = state.item;
    $("compose").hidden = !hasCase();
    $("reply-error").textContent = "";
    if (!hasCase()) return;
    $("compose-to").textContent = `（作为投诉 #${item.complaint_id} 的答复发送）`;
    $("reply-text").value = state.reply.drafts.get(item.id) || "";
    $("reply-text").placeholder = (item.replies || []).length
      ? "填写给市民的答复，或在可复用答复中点击“采用并编辑”" : "填写给市民的答复";
    $("reply-status").textContent = state.reply.sent.get(item.id) || "";
  }

  function adoptReply(r) {
    if (!hasCase()) return;
    const box = $("reply-text");
    box.value = r.reply;
    state.reply.drafts.set(state.item.id, r.reply);
    $("reply-error").textContent = "";
    $("reply-status").textContent = `已采用 #${r.source_complaint_id} 的答复，可编辑后发送`;
    box.focus({ preventScroll: true });
    box.setSelectionRange(box.value.length, box.value.length);
    $("compose").scrollIntoView({ block: "nearest" });
  }

  /** Post the reply as the `replied` event of the item's complaint. */
  async function sendReply() {
    const item = state.item;
    if (!item || !item.complaint_id || state.reply.busy) return;
    const text = $("reply-text").value;
    if (!text.trim()) {
      $("reply-error").textContent = "请先填写答复内容。";
      $("reply-text").focus();
      return;
    }
    state.reply.busy = true;
    $("reply-send").disabled = true;
    $("reply-error").textContent = "";
    try {
      const body = { event_id: `review-${item.id}-${Date.now()}`, kind: "replied", at: new Date().toISOString(), reply: text };
      const c = await api("POST", `/v1/complaints/${encodeURIComponent(item.complaint_id)}/events`, body);
      state.reply.drafts.delete(item.id);
      const note = `已于 ${fmtTime(new Date().toISOString())} 发送答复（案件状态：${CASE_STATES[c.state] || c.state}）`;
      state.reply.sent.set(item.id, note);
      if (state.item && state.item.id === item.id) {
        $("reply-text").value = "";
        $("reply-status").textContent = note;
      }
      toast("已发送答复");
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      if (e.status !== 401 && state.item && state.item.id === item.id) $("reply-error").textContent = describeReply(e);
    } finally {
      state.reply.busy = false;
      $("reply-send").disabled = false;
    }
  }

  // ------------------------------------------------------------------ early warnings

  const WARNING_KINDS = {
    surge: "数量异常上升", repeated_event: "同一事件重复反映", overdue_cases: "超期工单", overdue_share: "超期率上升",
  };
  const WARNING_STATUS = { open: "未处理", acknowledged: "已确认", all: "全部" };
  const WARNING_FIELDS = {
    from: "起始日期", to: "截止日期", kind: "类型", status: "状态", department: "部门", day: "检测日期", note: "备注",
  };
  const WARNING_DAYS = 30; // the API's default period: the 30 days up to today

  function localDay(offset = 0) {
    const d = new Date();
    d.setDate(d.getDate() + offset);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  }

  /** Like describe(), in words about warnings. */
  function describeWarnings(e) {
    if (e.status === 422) {
      const field = WARNING_FIELDS[e.field] || e.field;
      return `输入有误${field ? `（${field}）` : ""}：${e.message}`;
    }
    if (e.status === 404) return `找不到该预警：${e.message}`;
    if (e.status === 409) return `该预警已被确认：${e.message}`;
    return describe(e);
  }

  /** The query in the form; empty dates become the API's default, shown in the form. */
  function warningsParams() {
    if (!$("w-to").value) $("w-to").value = localDay();
    if (!$("w-from").value) {
      const from = parseDay($("w-to").value);
      from.setUTCDate(from.getUTCDate() - (WARNING_DAYS - 1));
      $("w-from").value = isoDay(from);
    }
    const params = { from: $("w-from").value, to: $("w-to").value, status: $("w-status").value };
    if ($("w-kind").value) params.kind = $("w-kind").value;
    if ($("w-department").value) params.department = $("w-department").value;
    return params;
  }

  async function loadWarnings() {
    const from = $("w-from").value;
    const to = $("w-to").value;
    if (from && to && from > to) {
      $("warnings-error").textContent = `起始日期（${from}）晚于截止日期（${to}），请调整后再查询。`;
      $("w-from").focus();
      return;
    }
    if (!$("w-day").value) $("w-day").value = localDay(-1); // detection runs for yesterday
    const params = warningsParams();
    $("warnings-query").disabled = true;
    try {
      const data = await api("GET", `/v1/warnings?${new URLSearchParams(params)}`);
      state.warnings.list = data.warnings;
      state.warnings.params = params;
      state.warnings.loaded = true;
      $("warnings-error").textContent = "";
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      if (e.status !== 401) $("warnings-error").textContent = describeWarnings(e);
      if (e.status === 422 && (e.field === "from" || e.field === "to")) $(`w-${e.field}`).focus();
      return;
    } finally {
      $("warnings-query").disabled = false;
    }
    renderWarnings();
  }

  function renderWarningsCount() {
    const list = state.warnings.list;
    const p = state.warnings.params;
    const what = [p.kind ? WARNING_KINDS[p.kind] : null, p.department, p.status !== "all" ? WARNING_STATUS[p.status] : null]
      .filter(Boolean).join("，");
    const open = list.filter((w) => !w.acknowledged_at).length;
    $("warnings-count").textContent = `${p.from} 至 ${p.to}${what ? `（${what}）` : ""}：共 ${list.length} 条预警`
      + (open === list.length ? "" : `，其中未处理 ${open} 条`);
  }

  function renderWarnings() {
    renderWarningsCount();
    const list = state.warnings.list;
    $("warnings-list").replaceChildren(...(list.length ? list.map(warningEntry)
      : [h("li", { class: "q-empty card" }, "没有符合条件的预警。可以调整查询条件，或在右侧检测某一天。")]));
  }

  /** What a warning is about, in words. */
  function warningSubject(w) {
    const ev = w.evidence || {};
    if (w.kind === "surge" && ev.family === "subcategory") {
      const sub = ev.subcategory && ev.subcategory.includes("/") ? labelText("subcategory", ev.subcategory) : ev.subcategory || "未知";
      return `${ev.district || "未知区域"} · ${sub}`;
    }
    if (w.kind === "repeated_event") return `问题 #${ev.issue_id}`;
    return w.department || "未知部门";
  }

  const fmtCount = (v) => String(Math.round(Number(v) * 10) / 10);
  function fmtP(p) {
    if (p === null || p === undefined) return null;
    return p < 0.0001 ? "p < 0.0001" : `p = ${Number(p.toPrecision(2))}`;
  }

  /** Observed against expected, as the kind measures them. */
  function warningNumbers(w) {
    const ev = w.evidence || {};
    if (w.kind === "surge") {
      const e = w.expected === null || w.expected === undefined ? null : Number(w.expected);
      const expected = e === null ? "" : e > 0 && e < 0.05 ? "，预计不足 0.1 件" : `，预计 ${e.toFixed(1)} 件`;
      const p = fmtP(w.p_value);
      return `${fmtCount(w.observed)} 件${expected}${p ? `（${p}）` : ""}`;
    }
    if (w.kind === "repeated_event") {
      return `7 天内反映 ${fmtCount(w.observed)} 次（达到 ${ev.threshold || 3} 次即预警）`;
    }
    if (w.kind === "overdue_cases") {
      const soon = (ev.due_soon || []).length;
      const within = ev.due_soon_within_h ? `${fmtCount(ev.due_soon_within_h)} 小时内` : "即将";
      return `超期未答复 ${fmtCount(w.observed)} 件${soon ? `，${within}到期 ${soon} 件` : ""}`
        + (ev.as_of ? `（截至 ${fmtTime(ev.as_of)}）` : "");
    }
    if (w.kind === "overdue_share") {
      const week = ev.week || {};
      const before = ev.four_weeks_before || {};
      return `本周超期率 ${fmtShare(w.observed)}，此前 4 周 ${fmtShare(w.expected)}`
        + (week.cases !== undefined ? `（本周 ${week.overdue}/${week.cases} 件，此前 ${before.overdue}/${before.cases} 件）` : "");
    }
    return `${fmtCount(w.observed)}${w.expected === null ? "" : ` / ${w.expected}`}`;
  }

  /** The complaint ids of the evidence, in groups: [[name, ids], …]. */
  function warningComplaints(w) {
    const ev = w.evidence || {};
    const groups = [];
    if (ev.complaint_ids && ev.complaint_ids.length) groups.push(["涉及投诉", ev.complaint_ids]);
    if (ev.overdue && ev.overdue.length) groups.push(["超期", ev.overdue.map((c) => c.id)]);
    if (ev.due_soon && ev.due_soon.length) groups.push(["即将到期", ev.due_soon.map((c) => c.id)]);
    return groups;
  }

  function warningEntry(w) {
    const id = `warning-${w.id}`;
    const acked = !!w.acknowledged_at;
    const ev = w.evidence || {};
    const fresh = state.warnings.fresh.has(w.id);
    const spark = w.kind === "surge" && Array.isArray(ev.counts) && Array.isArray(ev.days) && ev.counts.length
      ? sparkline(ev.counts, ev.days, { width: 180, height: 36 }) : null;
    const body = h("div", { class: "w-body" },
      h("p", { class: "w-numbers" }, warningNumbers(w)),
      spark ? h("div", { class: "w-trend" }, spark, h("span", { class: "hint", "aria-hidden": "true" },
        `${fmtDay(ev.days[0])} 至 ${fmtDay(ev.days[ev.days.length - 1])}每日件数`)) : null,
      ...warningComplaints(w).map(([name, ids]) => h("p", { class: "w-ids" },
        h("span", { class: "hint" }, `${name}（${ids.length} 件）：`),
        ids.map((cid) => h("code", {}, `#${cid}`)))));
    const error = h("p", { class: "error", role: "alert" });
    let foot;
    if (acked) {
      foot = h("p", { class: "w-acked" }, `已确认：${w.acknowledged_by} · ${fmtTime(w.acknowledged_at)}`,
        w.note ? h("span", {}, ` · 备注：${w.note}`) : null);
    } else {
      const note = h("input", { id: `${id}-note`, type: "text", maxlength: "2000", autocomplete: "off", placeholder: "可选，如：已转交承办部门核查" });
      const button = h("button", { type: "submit", class: "primary", "aria-describedby": `${id}-title` }, "确认");
      foot = h("form", {
        class: "w-ack", "aria-label": `确认预警 #${w.id}`, novalidate: true,
        onsubmit: (e) => { e.preventDefault(); acknowledgeWarning(w, note, button, error); },
      }, h("label", { for: `${id}-note` }, "备注"), note, button);
    }
    return h("li", {
      id, class: `card warning kind-${w.kind}${acked ? " acked" : ""}`, tabindex: "-1",
      dataset: { id: w.id, kind: w.kind }, "aria-labelledby": `${id}-title`,
    },
    h("div", { class: "w-head" },
      h("span", { class: `w-kind kind-${w.kind}` }, WARNING_KINDS[w.kind] || w.kind),
      h("h3", { id: `${id}-title`, class: "w-subject" }, warningSubject(w)),
      h("span", { class: "w-day" }, w.day),
      w.department && warningSubject(w) !== w.department ? h("span", { class: "w-dept" }, w.department) : null,
      fresh ? h("span", { class: "w-new" }, "新") : null,
      h("span", { class: acked ? "w-status done" : "w-status" }, acked ? "已确认" : "未处理")),
    body, foot, error);
  }

  async function acknowledgeWarning(w, input, button, error) {
    if (state.warnings.busy) return;
    state.warnings.busy = true;
    button.disabled = true;
    error.textContent = "";
    try {
      const saved = await api("POST", `/v1/warnings/${w.id}/acknowledge`, { note: input.value.trim() || null });
      const list = state.warnings.list;
      const at = list.findIndex((x) => x.id === saved.id);
      if (at >= 0) list[at] = saved;
      const li = $(`warning-${saved.id}`);
      if (li) {
        const entry = warningEntry(saved);
        li.replaceWith(entry);
        entry.focus({ preventScroll: true });
      }
      renderWarningsCount();
      toast(`已确认预警：${WARNING_KINDS[saved.kind] || saved.kind} · ${warningSubject(saved)}`);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      if (e.status !== 401) error.textContent = describeWarnings(e);
    } finally {
      state.warnings.busy = false;
      button.disabled = false;
    }
  }

  async function detectWarnings() {
    const day = $("w-day").value;
    if (!day) {
      $("warnings-error").textContent = "请选择要检测的日期。";
      $("w-day").focus();
      return;
    }
    $("warnings-run").disabled = true;
    $("warnings-error").textContent = "";
    let added;
    try {
      ({ added } = await api("POST", "/v1/warnings/detect", { day }));
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      if (e.status !== 401) $("warnings-error").textContent = describeWarnings(e);
      if (e.status === 422) $("w-day").focus();
      return;
    } finally {
      $("warnings-run").disabled = false;
    }
    state.warnings.fresh = new Set(added.map((w) => w.id));
    const p = state.warnings.params;
    const outside = added.length && p && (day < p.from || day > p.to);
    toast(`新增 ${added.length} 条预警${outside ? `（${day} 不在当前查询的日期范围内）` : ""}`);
    await loadWarnings();
  }

  // ------------------------------------------------------------------ keyboard

  function anyDialogOpen() {
    return $("help").open || $("split").open;
  }

  function onKey(ev) {
    if (!$("login").hidden || !state.key) return;
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      if (ev.target && ev.target.id === "reply-text") { // in the reply: send it, not the labels
        ev.preventDefault();
        sendReply();
        return;
      }
      if (!anyDialogOpen() && state.item && state.view === "queue") {
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
    const views = {
      h: () => showView("hot"), q: () => showView("queue"), t: () => showView("stats"), w: () => showView("warnings"),
    };
    const actions = state.view === "hot" ? {
      "?": () => $("help").showModal(),
      r: () => loadHot(),
      ...views,
    } : state.view === "stats" ? {
      "?": () => $("help").showModal(),
      r: () => loadStats(),
      ...views,
    } : state.view === "warnings" ? {
      "?": () => $("help").showModal(),
      r: () => loadWarnings(),
      ...views,
    } : {
      ...views,
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
    $("view-queue").addEventListener("click", () => showView("queue", { focus: false }));
    $("view-hot").addEventListener("click", () => showView("hot", { focus: false }));
    $("view-stats").addEventListener("click", () => showView("stats", { focus: false }));
    $("view-warnings").addEventListener("click", () => showView("warnings", { focus: false }));
    $("hot-filters").addEventListener("submit", (ev) => { ev.preventDefault(); loadHot(); });
    $("hd-complaints").addEventListener("change", updateSplit);
    $("hd-split").addEventListener("click", splitIssue);
    $("hd-into").addEventListener("change", updateMerge);
    $("hd-merge").addEventListener("click", mergeIssue);
    $("stats-filters").addEventListener("submit", (ev) => { ev.preventDefault(); loadStats(); });
    $("warnings-filters").addEventListener("submit", (ev) => { ev.preventDefault(); loadWarnings(); });
    $("warnings-detect").addEventListener("submit", (ev) => { ev.preventDefault(); detectWarnings(); });
    $("reply-send").addEventListener("click", sendReply);
    $("reply-text").addEventListener("input", (ev) => {
      if (state.item) state.reply.drafts.set(state.item.id, ev.target.value);
    });
    $("reply-text").addEventListener("keydown", (ev) => {
      if (ev.key === "Escape") { ev.preventDefault(); ev.target.blur(); }
    });
    $("st-dimension").addEventListener("change", () => { if (state.stats.data) renderDimensionChart(); });
    $("stats-export").addEventListener("click", (ev) => {
      const button = ev.target.closest("button[data-table]");
      if (button) exportCsv(button.dataset.table);
    });
    if (window.ResizeObserver) { // charts are drawn to the width they have: redraw when it changes
      let width = 0;
      new ResizeObserver((entries) => {
        const now = Math.round(entries[0].contentRect.width);
        if (!now || now === width) return;
        width = now;
        if (state.stats.data) requestAnimationFrame(renderCharts);
      }).observe($("chart-total"));
    }
    document.addEventListener("keydown", onKey);

    const key = sessionStorage.getItem(KEY_STORAGE);
    if (key) login(key);
    else showLogin();
  }

  init();
})();
