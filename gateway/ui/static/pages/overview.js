import { t, lang } from "../i18n.js";
import { h, table, card, num, usd, ms, pct } from "../dom.js";
import { api } from "../api.js";

export function usageBase(ctx) { return ctx.me.role === "admin" ? "/admin/usage" : "/api/usage"; }


export default {
  id: "overview",
  async render(main, ctx) {
    const box = h("div", { "aria-live": "polite" });
    const stamp = h("p", { class: "meta" });
    main.append(stamp, box);
    const load = async () => {
      const end = new Date();
      const start = new Date(end.getTime() - 7 * 86400e3);
      const q = `start=${start.toISOString()}&end=${end.toISOString()}`;
      const base = usageBase(ctx);
      const [total, days, byModel] = await Promise.all([
        api(`${base}?${q}`), api(`${base}?${q}&group_by=day`), api(`${base}?${q}&group_by=model`),
      ]);
      const s = total.data[0] || {};
      const requests = s.requests || 0;
      const cols = [
        { key: "requests", label: t("m.requests"), num: true, fmt: num },
        { key: "errors", label: t("m.errors"), num: true, fmt: num },
        { key: "cache_hits", label: t("m.cache_hits"), num: true, fmt: num },
        { key: "fallbacks", label: t("m.fallbacks"), num: true, fmt: num },
        { key: "latency_p50_ms", label: t("m.p50"), num: true, fmt: ms },
        { key: "latency_p95_ms", label: t("m.p95"), num: true, fmt: ms },
        { key: "prompt_tokens", label: t("m.prompt_tokens"), num: true, fmt: num },
        { key: "completion_tokens", label: t("m.completion_tokens"), num: true, fmt: num },
        { key: "cost_usd", label: t("m.cost"), num: true, fmt: usd },
      ];
      box.replaceChildren(
        h("div", { class: "cards" },
          card(t("m.requests"), num(requests)),
          card(t("m.error_rate"), requests ? pct((s.errors || 0) / requests) : "—"),
          card(t("m.p50"), ms(s.latency_p50_ms)), card(t("m.p95"), ms(s.latency_p95_ms)),
          card(t("m.tokens"), num((s.prompt_tokens || 0) + (s.completion_tokens || 0))),
          card(t("m.cache_rate"), requests ? pct((s.cache_hits || 0) / requests) : "—"),
          card(t("m.fallbacks"), num(s.fallbacks || 0)),
          card(t("m.cost"), usd(s.cost_usd || 0))),
        h("h2", { text: t("overview.per_day") }),
        table([{ key: "day", label: t("dim.day"), fmt: (v) => String(v).slice(0, 10) }, ...cols], days.data),
        h("h2", { text: t("overview.per_model") }),
        table([{ key: "model", label: t("dim.model") }, ...cols], byModel.data),
      );
      stamp.textContent = t("overview.window") + " · " + t("overview.updated", { time: new Date().toLocaleTimeString(lang() === "ko" ? "ko-KR" : "en-US") });
    };
    await load();
    ctx.timers.push(setInterval(() => load().catch(() => null), 10000));
  },
};
