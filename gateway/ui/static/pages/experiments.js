import { t } from "../i18n.js";
import { h, table, num, pct, ms, usd, errorBox, toast } from "../dom.js";
import { api } from "../api.js";

const scalar = (v) => v === null || v === undefined || typeof v !== "object";

function kv(obj) {
  return table([{ key: "k", label: t("exp.field") }, { key: "v", label: t("exp.value") }],
    Object.entries(obj || {}).filter(([, v]) => scalar(v)).map(([k, v]) => ({ k, v: typeof v === "number" ? num(v, 4) : v })));
}

function details(label, obj) {
  return h("details", {}, h("summary", { text: label }), h("pre", { class: "json", text: JSON.stringify(obj, null, 2) }));
}

function verdictBadge(v) {
  const s = String(v || "");
  const cls = /better|significant/.test(s) && !/not|no /.test(s) ? "ok" : /worse/.test(s) ? "bad" : "warn";
  return h("span", { class: "badge " + cls, "data-testid": "verdict", text: s || "—" });
}

async function showReport(out, name) {
  const r = await api(`/admin/experiments/${encodeURIComponent(name)}`);
  const arms = Object.entries(r.arms || {}).map(([arm, s]) => ({ arm, ...s }));
  const comps = Object.entries(r.comparisons || {}).map(([arm, c]) => ({ arm, ...c }));
  const armKeys = [...new Set(arms.flatMap((a) => Object.keys(a).filter((k) => k !== "arm" && scalar(a[k]))))].slice(0, 8);
  const compKeys = [...new Set(comps.flatMap((a) => Object.keys(a).filter((k) => !["arm", "verdict"].includes(k) && scalar(a[k]))))].slice(0, 6);
  out.replaceChildren(h("h2", { text: t("exp.report", { name }) }),
    h("p", { class: "meta", text: `${t("exp.control")}: ${r.control} · ${t("exp.run")}: ${r.run && r.run.id !== null ? r.run.id : t("exp.all_rows")}` }),
    table([{ key: "arm", label: t("exp.arm") }, ...armKeys.map((k) => ({ key: k, label: k, num: true, fmt: (v) => (typeof v === "number" ? num(v, 4) : v) }))], arms),
    h("h2", { text: t("exp.significance") }),
    table([{ key: "arm", label: t("exp.arm") }, { key: "verdict", label: t("exp.verdict"), fmt: verdictBadge },
      ...compKeys.map((k) => ({ key: k, label: k, num: true, fmt: (v) => (typeof v === "number" ? num(v, 4) : v) }))], comps),
    details(t("exp.raw"), r));
  out.focus();
}

async function showShadow(out, alias) {
  const r = await api(`/admin/shadow/${encodeURIComponent(alias)}`);
  const rows = Object.entries(r.models || {}).map(([model, m]) => ({ model, ...m }));
  const judge = rows.filter((m) => m.judge).map((m) => ({ model: m.model, ...m.judge,
    shadow_mean: m.judge.shadow_score && m.judge.shadow_score.mean, primary_mean: m.judge.primary_score && m.judge.primary_score.mean,
    preferred: m.judge.shadow_preferred && m.judge.shadow_preferred.verdict }));
  out.replaceChildren(h("h2", { text: t("exp.shadow_report", { alias }) }),
    table([
      { key: "model", label: t("exp.shadow_model") }, { key: "pairs", label: t("exp.pairs"), num: true }, { key: "completed", label: t("exp.completed"), num: true },
      { key: "error_rate", label: t("m.error_rate"), num: true, fmt: pct },
      { key: "agreement", label: t("exp.agreement"), num: true, fmt: (v) => (v && v.mean !== null ? num(v.mean, 3) : "—") },
      { key: "latency_ratio_p50", label: t("exp.latency_ratio"), num: true, fmt: (v) => num(v, 2) },
      { key: "cost_ratio", label: t("exp.cost_ratio"), num: true, fmt: (v) => num(v, 2) },
      { key: "shadow_cost_usd", label: t("m.cost"), num: true, fmt: usd },
    ], rows),
    h("h2", { text: t("exp.judge") }),
    table([
      { key: "model", label: t("exp.shadow_model") }, { key: "judged", label: t("exp.judged"), num: true },
      { key: "shadow_mean", label: t("exp.shadow_score"), num: true, fmt: (v) => num(v, 2) },
      { key: "primary_mean", label: t("exp.primary_score"), num: true, fmt: (v) => num(v, 2) },
      { key: "shadow_win_rate", label: t("exp.win_rate"), num: true, fmt: pct },
      { key: "preferred", label: t("exp.verdict"), fmt: verdictBadge },
    ], judge),
    details(t("exp.raw"), r));
  out.focus();
}

export default {
  id: "experiments",
  admin: true,
  async render(main) {
    const status = h("div", { "aria-live": "polite" });
    const list = h("div");
    const report = h("section", { tabindex: "-1", "aria-live": "polite" });
    const act = async (name, action) => {
      try {
        if (action === "reset") await api(`/admin/experiments/${encodeURIComponent(name)}/reset`, { method: "POST", json: {} });
        else await api(`/admin/experiments/${encodeURIComponent(name)}/canary/${action}`, { method: "POST", json: {} });
        toast(t("exp.done_" + action)); await load();
      } catch (err) { status.replaceChildren(errorBox(err)); }
    };
    const load = async () => {
      const [exps, cfg] = await Promise.all([api("/admin/experiments"), api("/admin/config")]);
      const shadowed = Object.entries(cfg.config.aliases || {}).filter(([, a]) => a.shadow && a.shadow.length).map(([name]) => name);
      const splits = Object.entries(cfg.config.aliases || {}).filter(([, a]) => a.split).map(([name, a]) => ({ name, alias: name, arms: a.split, split: true }));
      const rows = [...exps.data, ...splits];
      list.replaceChildren(
        table([
          { key: "name", label: t("exp.name") }, { key: "alias", label: t("models.alias") },
          { key: "arms", label: t("exp.arms"), fmt: (v) => Object.entries(v || {}).map(([a, c]) => `${a}: ${typeof c === "object" ? `${c.chain.join("→")} (${c.weight})` : c}`).join("; ") },
          { key: "canary", label: t("exp.canary"), fmt: (c) => (c ? h("span", { "data-testid": "canary-state" },
            h("span", { class: "badge " + (c.status === "rolled_back" ? "bad" : c.status === "complete" ? "ok" : "warn"), text: t("canary." + c.status) }),
            ` ${num(c.percent, 1)}% · ${t("exp.step")} ${c.step + 1}/${c.steps}` + (c.rollback_reason ? ` · ${c.rollback_reason}` : "")) : "—") },
          { key: "name", label: t("actions"), fmt: (name, r) => h("span", { class: "row" },
            h("button", { type: "button", class: "secondary", text: t("exp.open"), onclick: () => showReport(report, name).catch((e) => report.replaceChildren(errorBox(e))) }),
            r.canary ? h("button", { type: "button", text: t("exp.promote"), "aria-label": `${t("exp.promote")} ${name}`, onclick: () => act(name, "promote") }) : null,
            r.canary ? h("button", { type: "button", class: "danger", text: t("exp.rollback"), "aria-label": `${t("exp.rollback")} ${name}`, onclick: () => act(name, "rollback") }) : null,
            r.split ? null : h("button", { type: "button", class: "secondary", text: t("exp.reset"), "aria-label": `${t("exp.reset")} ${name}`, onclick: () => act(name, "reset") })) },
        ], rows),
        h("h2", { text: t("exp.shadows") }),
        shadowed.length ? h("div", { class: "row" }, shadowed.map((alias) => h("button", { type: "button", class: "secondary", "data-shadow": alias, text: t("exp.open_shadow", { alias }),
          onclick: () => showShadow(report, alias).catch((e) => report.replaceChildren(errorBox(e))) }))) : h("p", { text: t("exp.no_shadows") }),
      );
    };
    main.append(status, list, report);
    await load();
  },
};
export { kv, ms };
