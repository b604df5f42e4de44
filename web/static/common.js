// Shared helpers of the monitoring pages: the API client with the operator token, formatting,
// and small DOM builders. Everything from the data goes in as text, never as HTML.
"use strict";

(function () {
  const { el, DataTable } = window.Gwms;
  const TOKEN_KEY = "gwms-operator-token";
  const statusLine = () => document.getElementById("status");
  function token() {
    return window.localStorage.getItem(TOKEN_KEY) || "";
  }

  async function api(url, options) {
    const headers = { Accept: "application/json" };
    if (token()) headers.Authorization = "Bearer " + token();
    const response = await fetch(url, Object.assign({ headers, cache: "no-store" }, options || {}));
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok) {
      const detail = data && data.detail ? data.detail : response.statusText;
      const error = new Error(`${response.status}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  function setStatus(text, isError) {
    statusLine().textContent = text;
    statusLine().classList.toggle("error", Boolean(isError));
  }

  function setAction(text, isError) {
    const line = document.getElementById("action");
    line.textContent = text;
    line.className = isError ? "error" : "";
  }

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  function fmtTime(epoch) {
    if (epoch === null || epoch === undefined || !epoch) return "";
    const d = new Date(epoch * 1000);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined) return "";
    const s = Math.abs(seconds);
    const sign = seconds < 0 ? "-" : "";
    if (s < 120) return `${sign}${Math.round(s)} s`;
    if (s < 7200) return `${sign}${Math.round(s / 60)} min`;
    if (s < 172800) return `${sign}${(s / 3600).toFixed(1)} h`;
    return `${sign}${(s / 86400).toFixed(1)} d`;
  }

  function timeCell(epoch) {
    return epoch ? el("time", { datetime: new Date(epoch * 1000).toISOString(), text: fmtTime(epoch) }) : "";
  }

  function link(href, text) {
    return el("a", { href, text });
  }

  function card(label, value, extra) {
    return el("div", { className: "card" + (extra && extra.className ? " " + extra.className : ""), "data-card": extra && extra.id }, [
      el("span", { className: "label", text: label }),
      el("span", { className: "value", text: value }),
    ]);
  }

  function flags(map) {
    const names = Object.keys(map || {});
    if (!names.length) return "";
    return el("ul", { className: "flags" }, names.map((name) => el("li", { title: map[name], text: `${name} (${map[name]})` })));
  }

  function freshness(snapshot) {
    if (snapshot.error) return el("span", { className: "bad", title: snapshot.error, text: "query failed" });
    if (snapshot.age_seconds === null) return el("span", { className: "bad", text: "no counts yet" });
    const age = fmtDuration(snapshot.age_seconds);
    return el("span", { className: snapshot.stale ? "bad" : "good", text: snapshot.stale ? `stale (${age})` : age });
  }

  function downtimeText(downtime) {
    if (!downtime) return "";
    const until = downtime.end ? ` until ${fmtTime(downtime.end)}` : " (open ended)";
    return `${downtime.reason}${until}${downtime.comment ? ": " + downtime.comment : ""}`;
  }

  function countColumns(get) {
    return [
      { key: "idle", label: "Idle", numeric: true, value: (r) => get(r).idle },
      { key: "running", label: "Running", numeric: true, value: (r) => get(r).running },
      { key: "held", label: "Held", numeric: true, value: (r) => get(r).held },
    ];
  }

  function table(id, columns, options) {
    return new DataTable(document.getElementById(id), columns, options);
  }

  window.Gwms = Object.assign(window.Gwms, {
    TOKEN_KEY, token, api, setStatus, setAction, fmtTime, fmtDuration, timeCell, link, card,
    flags, freshness, downtimeText, countColumns, table,
  });
})();
