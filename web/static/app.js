// The monitoring pages: fetch the JSON API, render, and refresh every data-refresh seconds.
//
// <body data-page="overview|entry|frontend|failed|missing" data-api="/api/..."> tells which
// page this is. The operator token (typed by the user, kept in localStorage) goes with every
// request as "Authorization: Bearer"; it is needed for retries, and for reads when the factory
// is not public.
"use strict";

(function () {
  const { el, EntryChart, TOKEN_KEY, api, setStatus, setAction } = window.Gwms;
  const { fmtTime, fmtDuration, timeCell, link, card, flags } = window.Gwms;
  const { freshness, downtimeText, countColumns, table } = window.Gwms;
  const body = document.body;

  // ---------------------------------------------------------------------------------------
  // pages

  function overviewPage() {
    const entries = table(
      "entries",
      [
        { key: "name", label: "Entry", render: (e) => link(`/entries/${encodeURIComponent(e.name)}`, e.name) },
        { key: "site", label: "Site" },
        { key: "backend", label: "Backend" },
        ...countColumns((e) => e.counts),
        { key: "requested_idle", label: "Req. idle", numeric: true },
        { key: "requested_max", label: "Req. max", numeric: true },
        { key: "max_glideins", label: "Max", numeric: true, value: (e) => e.limits.max_glideins, title: "Entry limit on idle + running" },
        { key: "completed_last_hour", label: "Done 1 h", numeric: true },
        { key: "failed_last_hour", label: "Failed 1 h", numeric: true },
        { key: "downtime", label: "Downtime", value: (e) => downtimeText(e.downtime) },
        { key: "limits", label: "Limits triggered", value: (e) => Object.keys(e.limits_triggered).join(" "), render: (e) => flags(e.limits_triggered) },
        { key: "freshness", label: "Counts age", value: (e) => (e.snapshot.stale ? 1e12 : 0) + (e.snapshot.age_seconds || 0), render: (e) => freshness(e.snapshot) },
      ],
      {
        rowKey: (e) => e.name,
        sortKey: "name",
        empty: "no entry configured",
        footer: (rows) => {
          const sum = (get) => rows.reduce((n, r) => n + get(r), 0);
          return ["total", "", "", sum((r) => r.counts.idle), sum((r) => r.counts.running), sum((r) => r.counts.held),
            sum((r) => r.requested_idle), sum((r) => r.requested_max), sum((r) => r.limits.max_glideins),
            sum((r) => r.completed_last_hour), sum((r) => r.failed_last_hour), "", "", ""];
        },
      }
    );
    return async () => {
      const data = await api(body.dataset.api);
      document.getElementById("totals").replaceChildren(
        card("Idle", data.totals.idle, { id: "idle" }),
        card("Running", data.totals.running, { id: "running" }),
        card("Held", data.totals.held, { id: "held" }),
        card("Requested idle", data.requested_idle, { id: "requested_idle" }),
        card("Completed (1 h)", data.completed_last_hour, { id: "completed" }),
        card("Failed (1 h)", data.failed_last_hour, { id: "failed", className: data.failed_last_hour ? "warn" : "" }),
        card("Failed submits", data.failed_submits, { id: "failed_submits", className: data.failed_submits ? "warn" : "" })
      );
      entries.update(data.entries);
    };
  }

  function decisionColumns() {
    return [
      { key: "client", label: "Client" },
      { key: "frontend_key", label: "Frontend:class" },
      {
        key: "outcome",
        label: "Outcome",
        value: (d) => (d.current ? d.outcome : `${d.outcome} (old)`),
        title: "old: the request has not been seen for a few loops",
      },
      { key: "reason", label: "Reason", render: (d) => el("code", { text: d.reason }) },
      { key: "submit", label: "Submit", numeric: true },
      { key: "remove", label: "Remove", numeric: true },
      { key: "requested_idle", label: "Req. idle", numeric: true },
      { key: "adjusted_idle", label: "Adj. idle", numeric: true },
      { key: "requested_max", label: "Req. max", numeric: true },
      { key: "explanation", label: "Why", render: decisionWhy },
      { key: "at", label: "Decided", render: (d) => timeCell(d.at) },
    ];
  }

  function decisionWhy(d) {
    const parts = [el("span", { className: "why", text: d.explanation })];
    if (d.blocked) parts.push(el("div", { className: "bad", text: "not sent: " + d.blocked }));
    for (const note of d.notes || []) parts.push(el("div", { className: "hint", text: note }));
    if (d.inputs) {
      const i = d.inputs;
      const line = (label, c) => `${label}: idle ${c.idle}, running ${c.running}, held ${c.held}`;
      const limits = (label, l) => `${label}: max idle ${l.max_idle}, max held ${l.max_held}, max glideins ${l.max_glideins}`;
      parts.push(
        el("details", { className: "inputs" }, [
          el("summary", { text: "inputs" }),
          el("ul", {}, [
            el("li", { text: `wanted ${i.wanted} (adjusted idle minus the client's idle)` }),
            el("li", { text: line("client", i.client) }),
            el("li", { text: line("frontend:class", i.frontend) }),
            el("li", { text: line("entry", i.entry) }),
            el("li", { text: limits("entry limits", i.entry_limits) }),
            el("li", { text: limits("frontend limits", i.frontend_limits) }),
            el("li", { text: `max ${i.max_per_cycle} per cycle` }),
          ]),
        ])
      );
    }
    return el("div", {}, parts);
  }

  function failedColumns(withEntry, retry) {
    const columns = [
      { key: "failed_id", label: "Id", render: (f) => el("code", { text: f.failed_id }) },
      withEntry ? { key: "entry", label: "Entry", render: (f) => link(`/entries/${encodeURIComponent(f.entry)}`, f.entry) } : null,
      { key: "client", label: "Client" },
      { key: "count", label: "Glideins", numeric: true },
      { key: "reason", label: "Reason" },
      { key: "retries", label: "Retries", numeric: true },
      { key: "failed_at", label: "Failed", render: (f) => timeCell(f.failed_at) },
      retry ? { key: "retry", label: "", value: () => "", render: retry } : null,
    ];
    return columns.filter(Boolean);
  }

  function entryPage() {
    const chart = new EntryChart(document.getElementById("chart"));
    const scopeSelect = document.getElementById("chart-scope");
    let range = "hour";
    let lastSeries = null;
    const clients = table(
      "clients",
      [
        { key: "client", label: "Client" },
        ...countColumns((c) => c.counts),
        { key: "requested_idle", label: "Req. idle", numeric: true },
        { key: "requested_max", label: "Req. max", numeric: true },
        { key: "reason", label: "Last reason", value: (c) => c.decisions.map((d) => d.reason).join(" "), render: (c) => el("span", {}, c.decisions.map((d) => el("code", { title: d.explanation, text: d.reason }))) },
        { key: "done", label: "Done 1 h", numeric: true, value: (c) => c.completed_last_hour.completed },
        { key: "failed", label: "Failed 1 h", numeric: true, value: (c) => c.completed_last_hour.failed },
      ],
      { rowKey: (c) => c.client, sortKey: "client", empty: "no client has requests or glideins here" }
    );
    const decisions = table("decisions", decisionColumns(), { rowKey: (d) => d.work_key, sortKey: "client", empty: "no request has been decided yet" });
    const glideins = table(
      "glideins",
      [
        { key: "job_id", label: "Job" },
        { key: "client", label: "Client" },
        { key: "status", label: "Status" },
        { key: "since", label: "Since", render: (g) => timeCell(g.since) },
        { key: "hold_reason", label: "Hold reason" },
        { key: "site", label: "Site" },
      ],
      { rowKey: (g) => g.job_id, sortKey: "job_id", empty: "no live glidein" }
    );
    const completed = table(
      "completed",
      [
        { key: "job_id", label: "Job" },
        { key: "client", label: "Client" },
        { key: "result", label: "Result", render: (c) => el("span", { className: c.result === "ok" ? "good" : "bad", text: c.result }) },
        { key: "failure_category", label: "Category" },
        { key: "failed_script", label: "Failed check" },
        { key: "failure_detail", label: "Detail" },
        { key: "user_jobs", label: "Jobs", numeric: true },
        { key: "wall_seconds", label: "Wall", numeric: true, render: (c) => fmtDuration(c.wall_seconds) },
        { key: "finished_at", label: "Ended", render: (c) => timeCell(c.finished_at) },
      ],
      { rowKey: (c) => c.job_id, sortKey: "finished_at", sortDir: -1, empty: "no glidein has ended yet" }
    );
    const failed = table("entry-failed", failedColumns(false, null), { rowKey: (f) => f.failed_id, filter: false, empty: "none" });

    async function loadSeries() {
      lastSeries = await api(`${body.dataset.api}/series?range=${range}`);
      const current = scopeSelect.value;
      const options = [el("option", { value: "", text: "whole entry" })].concat(
        chart.scopes(lastSeries).map((c) => el("option", { value: c, text: c }))
      );
      scopeSelect.replaceChildren(...options);
      scopeSelect.value = chart.scopes(lastSeries).includes(current) ? current : "";
      document.getElementById("chart-empty").hidden = chart.show(lastSeries, scopeSelect.value);
    }

    for (const button of document.querySelectorAll("[data-range]")) {
      button.addEventListener("click", () => {
        range = button.dataset.range;
        for (const other of document.querySelectorAll("[data-range]")) other.classList.toggle("active", other === button);
        loadSeries().catch((err) => setStatus(err.message, true));
      });
    }
    scopeSelect.addEventListener("change", () => {
      if (lastSeries) document.getElementById("chart-empty").hidden = chart.show(lastSeries, scopeSelect.value);
    });
    window.addEventListener("resize", () => chart.resize());

    return async () => {
      const [data, list] = await Promise.all([api(body.dataset.api), api(`${body.dataset.api}/glideins`), loadSeries()]);
      const s = data.summary;
      document.getElementById("summary").replaceChildren(
        card("Idle", s.counts.idle, { id: "idle" }),
        card("Running", s.counts.running, { id: "running" }),
        card("Held", s.counts.held, { id: "held" }),
        card("Requested idle", s.requested_idle, { id: "requested_idle" }),
        card("Max glideins", s.limits.max_glideins, { id: "max_glideins" }),
        card("Counts age", s.snapshot.error ? "query failed" : s.snapshot.age_seconds === null ? "none" : fmtDuration(s.snapshot.age_seconds), { id: "age", className: s.snapshot.stale ? "warn" : "" }),
        card("Downtime", downtimeText(s.downtime) || "none", { id: "downtime", className: s.downtime ? "warn" : "" }),
        card("Limits triggered", Object.keys(s.limits_triggered).join(", ") || "none", { id: "limits", className: Object.keys(s.limits_triggered).length ? "warn" : "" })
      );
      clients.update(data.clients);
      decisions.update(data.clients.flatMap((c) => c.decisions));
      const message = document.getElementById("glideins-message");
      message.hidden = list.available;
      message.textContent = list.message || "";
      glideins.update(list.glideins);
      const stats = data.completed_last_hour;
      document.getElementById("completed-stats").replaceChildren(
        card("Completed (1 h)", stats.completed, { id: "completed" }),
        card("OK", stats.ok, { id: "ok" }),
        card("Validation failed", stats.failed_validation, { id: "failed_validation" }),
        card("Payload failed", stats.failed_payload, { id: "failed_payload" }),
        ...Object.entries(stats.by_category).map(([name, n]) => card(name, n, { id: "category-" + name, className: "warn" }))
      );
      completed.update(data.recent_completed);
      failed.update(data.failed_submits);
    };
  }

  function frontendPage() {
    const requests = table(
      "requests",
      [
        { key: "entry", label: "Entry", render: (r) => link(`/entries/${encodeURIComponent(r.entry)}`, r.entry) },
        { key: "client", label: "Client", value: (r) => r.decision.client },
        { key: "frontend_key", label: "Frontend:class", value: (r) => r.decision.frontend_key },
        ...countColumns((r) => r.glideins),
        { key: "requested_idle", label: "Req. idle", numeric: true, value: (r) => r.decision.requested_idle },
        { key: "requested_max", label: "Req. max", numeric: true, value: (r) => r.decision.requested_max },
        { key: "reason", label: "Reason", value: (r) => r.decision.reason, render: (r) => el("code", { text: r.decision.reason }) },
        { key: "why", label: "Why", value: (r) => r.decision.explanation, render: (r) => decisionWhy(r.decision) },
      ],
      { rowKey: (r) => `${r.entry}/${r.decision.work_key}`, sortKey: "entry", empty: "no request from this frontend" }
    );
    const credentials = table(
      "credentials",
      [
        { key: "credential_id", label: "Id" },
        { key: "client", label: "Client" },
        { key: "security_class", label: "Class" },
        { key: "username", label: "Local user" },
        { key: "kind", label: "Kind" },
        { key: "expires_in_seconds", label: "Expires in", numeric: true, render: (c) => (c.expires_in_seconds === null ? "unknown" : el("span", { className: c.expires_in_seconds < 3600 ? "bad" : "", title: fmtTime(c.expires_at), text: fmtDuration(c.expires_in_seconds) })) },
        { key: "received_at", label: "Received", render: (c) => timeCell(c.received_at) },
        { key: "fingerprint", label: "Fingerprint", render: (c) => el("code", { text: c.fingerprint }) },
      ],
      { rowKey: (c) => `${c.client}/${c.credential_id}`, sortKey: "credential_id", empty: "no credential received from this frontend" }
    );
    const monitoring = table(
      "monitoring",
      [
        { key: "entry", label: "Entry" },
        { key: "client", label: "Client" },
        { key: "idle", label: "Idle", numeric: true, value: (m) => m.monitor.StatusIdle },
        { key: "running", label: "Running", numeric: true, value: (m) => m.monitor.StatusRunning },
        { key: "held", label: "Held", numeric: true, value: (m) => m.monitor.StatusHeld },
        { key: "req_idle", label: "Req. idle", numeric: true, value: (m) => m.monitor.RequestedIdle },
        { key: "adj_idle", label: "Adj. idle", numeric: true, value: (m) => m.monitor.RequestedAdjustedIdle },
        { key: "limits", label: "Limits triggered", value: (m) => Object.keys(m.limits_triggered).join(" "), render: (m) => flags(m.limits_triggered) },
      ],
      { rowKey: (m) => `${m.entry}/${m.client}`, sortKey: "entry", empty: "no monitoring ad published for this frontend" }
    );
    return async () => {
      const data = await api(body.dataset.api);
      document.getElementById("frontend-info").replaceChildren(
        card("Identity", data.identity, { id: "identity" }),
        ...Object.entries(data.security_classes).map(([sc, user]) => card(`Class ${sc}`, `user ${user}`, { id: "class-" + sc }))
      );
      requests.update(data.requests);
      credentials.update(data.credentials);
      const message = document.getElementById("monitoring-message");
      message.hidden = !data.monitoring_message;
      message.textContent = data.monitoring_message || "";
      monitoring.update(data.client_monitoring);
    };
  }

  function failedPage() {
    let refresh = null;
    const retryButton = (f) =>
      el("button", {
        type: "button",
        className: "retry",
        text: "Retry",
        onclick: async (event) => {
          const button = event.currentTarget;
          button.disabled = true;
          try {
            const result = await api(`/api/failed-submits/${encodeURIComponent(f.failed_id)}/retry`, { method: "POST" });
            const outcome = result.outcome || {};
            setAction(`${f.failed_id}: ${outcome.status || "done"}${outcome.detail ? " — " + outcome.detail : ""}`, outcome.status === "refused");
            if (refresh) await refresh();
          } catch (err) {
            setAction(`retry of ${f.failed_id} failed: ${err.message}`, true);
            button.disabled = false;
          }
        },
      });
    const failed = table("failed", failedColumns(true, retryButton), { rowKey: (f) => f.failed_id, sortKey: "failed_at", empty: "no failed submit" });
    refresh = async () => {
      const data = await api(body.dataset.api);
      document.getElementById("retry-hint").textContent = data.retry_enabled
        ? "Retrying needs the operator token (see the top right)."
        : "Retrying is not available on this web server.";
      failed.update(data.failed);
    };
    return refresh;
  }

  // ---------------------------------------------------------------------------------------
  // token box and refresh loop

  function setupToken() {
    const input = document.getElementById("token");
    document.getElementById("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      window.localStorage.setItem(TOKEN_KEY, input.value.trim());
      input.value = "";
      setStatus("token saved");
      loadNav();
      run();
    });
    document.getElementById("token-clear").addEventListener("click", () => {
      window.localStorage.removeItem(TOKEN_KEY);
      setStatus("token forgotten");
    });
  }

  const pages = { overview: overviewPage, entry: entryPage, frontend: frontendPage, failed: failedPage };
  const load = pages[body.dataset.page] ? pages[body.dataset.page]() : null;
  let timer = null;

  async function run() {
    window.clearTimeout(timer);
    if (!load) {
      setStatus("");
      return;
    }
    try {
      await load();
      body.dataset.loaded = String(Number(body.dataset.loaded || 0) + 1);
      setStatus("updated " + fmtTime(Date.now() / 1000));
    } catch (err) {
      const hint = err.status === 401 ? " — enter the operator token (top right)" : "";
      setStatus(err.message + hint, true);
    }
    timer = window.setTimeout(run, Number(body.dataset.refresh || 15) * 1000);
  }

  async function loadNav() {
    try {
      const names = await api("/api/frontends");
      document.getElementById("frontend-links").replaceChildren(
        ...names.map((name) => link(`/frontends/${encodeURIComponent(name)}`, name))
      );
    } catch (err) {
      // the refresh loop reports access problems; the navigation simply stays short
    }
  }

  setupToken();
  loadNav();
  run();
})();
