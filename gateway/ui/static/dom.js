// Tiny DOM helpers: every value goes through textContent and attributes, never through HTML parsing.
import { t, lang } from "./i18n.js";

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function field(label, input) {
  return h("label", {}, h("span", { text: label }), input);
}

const nf = () => new Intl.NumberFormat(lang() === "ko" ? "ko-KR" : "en-US");
export function num(v, digits = 0) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  if (typeof digits !== "number") digits = 0; // used directly as a table formatter: (value, row)
  return new Intl.NumberFormat(lang() === "ko" ? "ko-KR" : "en-US", { maximumFractionDigits: digits }).format(v);
}
export function usd(v) { return v === null || v === undefined ? "—" : "$" + Number(v).toFixed(v < 0.01 && v > 0 ? 6 : 4); }
export function ms(v) { return v === null || v === undefined ? "—" : num(v, 0) + " ms"; }
export function pct(v) { return v === null || v === undefined ? "—" : num(v * 100, 1) + "%"; }
export function when(v) { return v ? new Date(v).toLocaleString(lang() === "ko" ? "ko-KR" : "en-US") : "—"; }
export { nf };

// columns: [{key, label, num?, fmt?}]
export function table(columns, rows, caption) {
  const head = h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null, text: c.label })));
  const body = rows.map((r) => h("tr", {}, columns.map((c) => {
    const v = c.fmt ? c.fmt(r[c.key], r) : r[c.key];
    return h("td", { class: c.num ? "num" : null }, v instanceof Node ? v : (v === null || v === undefined ? "—" : String(v)));
  })));
  if (!rows.length) body.push(h("tr", {}, h("td", { colspan: columns.length, text: t("empty") })));
  return h("table", {}, caption ? h("caption", { class: "meta", text: caption }) : null, h("thead", {}, head), h("tbody", {}, body));
}

export function card(label, value) {
  return h("div", { class: "card" }, h("div", { class: "v", text: value }), h("div", { class: "k", text: label }));
}

export function errorBox(err) {
  return h("div", { class: "error", role: "alert", text: t("error") + ": " + (err && err.message ? err.message : String(err)) });
}

export function toast(message) {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => el.classList.remove("show"), 2500);
}

// A <select> of [value, label] pairs (or plain values).
export function select(attrs, options, value) {
  return h("select", attrs, options.map((o) => {
    const [v, label] = Array.isArray(o) ? o : [o, o];
    return h("option", { value: v, selected: String(v) === String(value ?? "") ? true : null, text: label });
  }));
}

const TONE = { succeeded: "ok", completed: "ok", active: "ok", better: "ok", pass: "ok",
  failed: "bad", cancelled: "bad", budget_exceeded: "bad", worse: "bad", fail: "bad" };
// A status word in a coloured badge; `text` is what is shown (translated), `status` picks the colour.
export function badge(status, text, attrs = {}) {
  return h("span", { class: "badge " + (TONE[status] || "warn"), ...attrs, text: text ?? status });
}

// Progress of `done` out of `total` as a native <progress> with its figures beside it.
export function progress(done, total, label) {
  const value = total ? Math.min(done / total, 1) : 0;
  return h("span", { class: "progress" },
    h("progress", { max: 1, value, "aria-label": label }), ` ${num(done)}/${num(total)} (${num(value * 100, 0)}%)`);
}

// Repeats `step` every `ms` while `el` stays in the page and `step` returns true.
export function poll(el, ms, step) {
  const tick = async () => {
    if (!el.isConnected) return;
    let again = false;
    try { again = await step(); } catch (err) { el.append(errorBox(err)); }
    if (again && el.isConnected) setTimeout(tick, ms);
  };
  setTimeout(tick, ms);
}

// A file the browser saves, from an API answer (the bearer token is not in a plain link).
export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: filename });
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
