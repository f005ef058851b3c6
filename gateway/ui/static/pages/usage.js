import { t } from "../i18n.js";
import { h, table, field, num, usd, ms, errorBox } from "../dom.js";
import { raw, api } from "../api.js";
import { usageBase } from "./overview.js";

const DIMS = ["user", "key", "model", "intent", "day"];

function isoDay(d) { return d.toISOString().slice(0, 10); }

export default {
  id: "usage",
  async render(main, ctx) {
    const dims = (ctx.me.role === "admin" ? DIMS : DIMS.filter((d) => d !== "user"));
    const boxes = Object.fromEntries(dims.map((d) => [d, h("input", { type: "checkbox", id: "dim-" + d, checked: d === "model" })]));
    const today = new Date();
    const start = h("input", { id: "usage-start", type: "date", value: isoDay(new Date(today.getTime() - 6 * 86400e3)) });
    const end = h("input", { id: "usage-end", type: "date", value: isoDay(today) });
    const out = h("div", { "aria-live": "polite" });
    const query = () => {
      const group = dims.filter((d) => boxes[d].checked).join(",");
      const s = new Date(start.value + "T00:00:00Z").toISOString();
      const e = new Date(new Date(end.value + "T00:00:00Z").getTime() + 86400e3).toISOString();
      return `start=${encodeURIComponent(s)}&end=${encodeURIComponent(e)}` + (group ? `&group_by=${group}` : "");
    };
    const run = async () => {
      try {
        const report = await api(`${usageBase(ctx)}?${query()}`);
        const groups = report.group_by.map((g) => ({ key: g, label: t("dim." + g), fmt: g === "day" ? (v) => String(v).slice(0, 10) : null }));
        out.replaceChildren(table([...groups,
          { key: "requests", label: t("m.requests"), num: true, fmt: num },
          { key: "errors", label: t("m.errors"), num: true, fmt: num },
          { key: "cache_hits", label: t("m.cache_hits"), num: true, fmt: num },
          { key: "fallbacks", label: t("m.fallbacks"), num: true, fmt: num },
          { key: "prompt_tokens", label: t("m.prompt_tokens"), num: true, fmt: num },
          { key: "completion_tokens", label: t("m.completion_tokens"), num: true, fmt: num },
          { key: "cost_usd", label: t("m.cost"), num: true, fmt: usd },
          { key: "latency_p50_ms", label: t("m.p50"), num: true, fmt: ms },
          { key: "latency_p95_ms", label: t("m.p95"), num: true, fmt: ms },
        ], report.data, t("usage.rows", { n: report.data.length })));
      } catch (err) { out.replaceChildren(errorBox(err)); }
    };
    const exportCsv = async () => {
      const r = await raw(`${usageBase(ctx)}/export?${query()}`);
      if (!r.ok) { out.prepend(errorBox(new Error(`HTTP ${r.status}`))); return; }
      const url = URL.createObjectURL(await r.blob());
      const a = h("a", { href: url, download: "prism-usage.csv" });
      document.body.append(a); a.click(); a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    };
    main.append(h("form", { class: "grid", onsubmit: (e) => { e.preventDefault(); run(); } },
      h("fieldset", { class: "field" }, h("legend", { text: t("usage.group_by") }),
        ...dims.map((d) => h("label", { class: "inline" }, boxes[d], " " + t("dim." + d)))),
      field(t("usage.start"), start), field(t("usage.end"), end),
      h("div", { class: "row" }, h("button", { type: "submit", id: "usage-run", text: t("usage.run") }),
        h("button", { type: "button", class: "secondary", id: "usage-csv", text: t("usage.csv"), onclick: exportCsv }))), out);
    await run();
  },
};
