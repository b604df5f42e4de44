// Sortable, filterable tables for the monitoring pages.
//
// A table is declared by its columns and fed rows (plain objects from the JSON API) on every
// refresh; the sort order and the filter text survive the refreshes. Cells are built with DOM
// nodes and textContent only: nothing from the data is ever parsed as HTML.
"use strict";

(function () {
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "text") node.textContent = String(value);
      else if (name === "className") node.className = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children === undefined || children === null ? [] : [].concat(children)) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function compare(a, b) {
    const emptyA = a === null || a === undefined || a === "";
    const emptyB = b === null || b === undefined || b === "";
    if (emptyA || emptyB) return emptyA === emptyB ? 0 : emptyA ? 1 : -1;
    if (typeof a === "number" && typeof b === "number") return a - b;
    return String(a).localeCompare(String(b), undefined, { numeric: true });
  }

  // columns: [{key, label, value(row) -> sortable value, render(row) -> Node|text,
  //            numeric, title}]
  // options: {rowKey(row) -> string, empty: text, filter: bool, footer(rows) -> [cells]}
  class DataTable {
    constructor(container, columns, options) {
      this.container = container;
      this.columns = columns;
      this.options = Object.assign({ filter: true, empty: "nothing to show" }, options || {});
      this.sortKey = this.options.sortKey || null;
      this.sortDir = this.options.sortDir || 1;
      this.filterText = "";
      this.rows = [];
      this.build();
    }

    value(column, row) {
      return column.value ? column.value(row) : row[column.key];
    }

    build() {
      this.container.replaceChildren();
      if (this.options.filter) {
        this.filterInput = el("input", {
          type: "search",
          className: "filter",
          placeholder: this.container.dataset.filterPlaceholder || "filter…",
          "aria-label": "Filter rows",
          oninput: () => {
            this.filterText = this.filterInput.value.trim().toLowerCase();
            this.render();
          },
        });
        this.container.append(this.filterInput);
      }
      this.headRow = el("tr");
      for (const column of this.columns) {
        const button = el("button", { type: "button", text: column.label, title: column.title });
        button.addEventListener("click", () => this.sortBy(column.key));
        this.headRow.append(
          el("th", { scope: "col", "data-col": column.key, className: column.numeric ? "num" : "" }, button)
        );
      }
      this.body = el("tbody");
      this.foot = el("tfoot");
      this.table = el("table", {}, [el("thead", {}, this.headRow), this.body, this.foot]);
      this.container.append(el("div", { className: "scroll" }, this.table));
    }

    sortBy(key) {
      this.sortDir = this.sortKey === key ? -this.sortDir : 1;
      this.sortKey = key;
      this.render();
    }

    update(rows) {
      this.rows = rows || [];
      this.render();
    }

    visibleRows() {
      let rows = this.rows;
      if (this.filterText) {
        rows = rows.filter((row) =>
          this.columns.some((column) => {
            const text = column.filterText ? column.filterText(row) : this.value(column, row);
            return text !== null && text !== undefined && String(text).toLowerCase().includes(this.filterText);
          })
        );
      }
      const column = this.columns.find((c) => c.key === this.sortKey);
      if (column) {
        rows = rows.slice().sort((a, b) => this.sortDir * compare(this.value(column, a), this.value(column, b)));
      }
      return rows;
    }

    render() {
      for (const th of this.headRow.children) {
        const sorted = th.dataset.col === this.sortKey;
        th.setAttribute("aria-sort", sorted ? (this.sortDir > 0 ? "ascending" : "descending") : "none");
      }
      const rows = this.visibleRows();
      const trs = rows.map((row) => {
        const tr = el("tr", { "data-key": this.options.rowKey ? this.options.rowKey(row) : null });
        for (const column of this.columns) {
          const content = column.render ? column.render(row) : this.value(column, row);
          tr.append(el("td", { "data-col": column.key, className: column.numeric ? "num" : "" }, content));
        }
        return tr;
      });
      if (!trs.length) {
        const text = this.rows.length ? "no row matches the filter" : this.options.empty;
        trs.push(el("tr", { className: "empty" }, el("td", { colspan: this.columns.length, text })));
      }
      this.body.replaceChildren(...trs);
      const footer = this.options.footer ? this.options.footer(this.rows) : null;
      this.foot.replaceChildren();
      if (footer && this.rows.length) {
        const tr = el("tr");
        footer.forEach((cell, i) => {
          const column = this.columns[i];
          tr.append(el("td", { "data-col": column.key, className: column.numeric ? "num" : "" }, cell));
        });
        this.foot.append(tr);
      }
      this.container.dataset.rows = String(rows.length);
    }
  }

  window.Gwms = Object.assign(window.Gwms || {}, { el, DataTable });
})();
