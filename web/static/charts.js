// Time-series charts of an entry with uPlot (web/static/vendor, served locally).
//
// The API gives columns: times[] and values{name: []}. Names are "idle", "running", ... for
// the whole entry and "client:<client>:idle" ... per client; a scope picks one of them.
// The chart element carries data-points / data-series for tests and scripts, and the uPlot
// instance is at window.Gwms.charts[element id].
"use strict";

(function () {
  const SERIES = [
    { name: "idle", label: "Idle", stroke: "#1f77b4" },
    { name: "running", label: "Running", stroke: "#2ca02c" },
    { name: "held", label: "Held", stroke: "#d62728" },
    { name: "requested_idle", label: "Requested idle", stroke: "#9467bd", dash: [6, 4] },
  ];

  class EntryChart {
    constructor(element) {
      this.element = element;
      this.plot = null;
      this.signature = "";
      window.Gwms.charts = window.Gwms.charts || {};
    }

    scopes(view) {
      const clients = new Set();
      for (const name of Object.keys(view.values)) {
        const match = /^client:(.*):[a-z_]+$/.exec(name);
        if (match) clients.add(match[1]);
      }
      return Array.from(clients).sort();
    }

    show(view, scope) {
      const prefix = scope ? "client:" + scope + ":" : "";
      const present = SERIES.filter((s) => Array.isArray(view.values[prefix + s.name]));
      const data = [view.times.slice()].concat(present.map((s) => view.values[prefix + s.name]));
      const signature = present.map((s) => s.name).join(",");
      this.element.dataset.points = String(view.times.length);
      this.element.dataset.series = signature;
      this.element.dataset.range = view.range;
      if (!present.length || !view.times.length) {
        this.destroy();
        return false;
      }
      if (this.plot && this.signature === signature) {
        this.plot.setData(data);
      } else {
        this.destroy();
        this.signature = signature;
        this.plot = new window.uPlot(this.options(present), data, this.element);
        window.Gwms.charts[this.element.id] = this.plot;
      }
      return true;
    }

    options(present) {
      return {
        width: Math.max(320, this.element.clientWidth || 800),
        height: 280,
        scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
        series: [{}].concat(
          present.map((s) => ({
            label: s.label,
            stroke: s.stroke,
            width: 2,
            dash: s.dash,
            points: { show: true, size: 4 },
            spanGaps: false,
          }))
        ),
        axes: [{}, { label: "glideins" }],
      };
    }

    resize() {
      if (this.plot) this.plot.setSize({ width: Math.max(320, this.element.clientWidth), height: 280 });
    }

    destroy() {
      if (this.plot) this.plot.destroy();
      this.plot = null;
      this.signature = "";
      delete window.Gwms.charts[this.element.id];
    }
  }

  window.Gwms = Object.assign(window.Gwms || {}, { EntryChart });
})();
