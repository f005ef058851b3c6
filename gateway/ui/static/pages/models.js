import { t } from "../i18n.js";
import { h, table, usd, when, errorBox, toast } from "../dom.js";
import { api } from "../api.js";

export default {
  id: "models",
  admin: true,
  async render(main) {
    const status = h("div", { "aria-live": "polite" });
    const body = h("div");
    const load = async () => {
      const [cfg, sync, circuits] = await Promise.all([api("/admin/config"), api("/admin/config/status"), api("/admin/circuits")]);
      const c = cfg.config;
      const models = Object.entries(c.models || {}).map(([name, m]) => ({ name, ...m, running: cfg.models.includes(name) }));
      const aliases = Object.entries(c.aliases || {}).map(([name, a]) => ({ name, ...a }));
      const circuitRows = Object.entries(circuits.circuits || {}).map(([target, s]) => ({ target, ...s }));
      body.replaceChildren(
        h("p", {}, t("models.hash") + ": ", h("code", { id: "config-hash", text: cfg.hash })),
        h("h2", { text: t("models.models") }),
        table([
          { key: "name", label: t("dim.model") }, { key: "provider", label: t("models.provider") }, { key: "tier", label: t("models.tier") },
          { key: "running", label: t("models.enabled"), fmt: (v) => h("span", { class: "badge " + (v ? "ok" : "warn"), text: v ? t("yes") : t("no") }) },
          { key: "price_input_per_mtok", label: t("models.price_in"), num: true, fmt: usd },
          { key: "price_output_per_mtok", label: t("models.price_out"), num: true, fmt: usd },
          { key: "context_window", label: t("models.context"), num: true },
        ], models),
        h("h2", { text: t("models.aliases") }),
        table([
          { key: "name", label: t("models.alias") },
          { key: "target", label: t("models.target"), fmt: (v, r) => v || (r.smart ? t("models.smart") : r.split ? Object.entries(r.split).map(([m, w]) => `${m} ${w}`).join(", ") : "—") },
          { key: "shadow", label: t("models.shadow"), fmt: (v) => (v && v.length ? v.join(", ") : "—") },
        ], aliases),
        h("h2", { text: t("models.fallbacks") }),
        table([{ key: "model", label: t("dim.model") }, { key: "chain", label: t("models.chain") }], Object.entries(c.fallbacks || {}).map(([model, chain]) => ({ model, chain: chain.join(" → ") }))),
        h("h2", { text: t("models.circuits") }),
        table([
          { key: "target", label: t("dim.model") },
          { key: "state", label: t("models.state"), fmt: (v) => h("span", { class: "badge " + (v === "closed" ? "ok" : "bad"), text: t("circuit." + v) }) },
          { key: "failures", label: t("models.failures"), num: true }, { key: "cooldown_s", label: t("models.cooldown"), num: true },
          { key: "target", label: t("actions"), fmt: (target) => h("button", { type: "button", class: "secondary", text: t("models.reset_circuit"), onclick: async () => {
            try { await api(`/admin/circuits/${encodeURIComponent(target)}/reset`, { method: "POST" }); toast(t("done")); await load(); } catch (err) { status.replaceChildren(errorBox(err)); }
          } }) },
        ], circuitRows, t("models.circuits_note")),
        h("h2", { text: t("models.workers") }),
        h("p", { class: "meta", text: `${t("models.scope")}: ${sync.scope}` + (sync.converged === undefined ? "" : ` · ${t("models.converged")}: ${sync.converged ? t("yes") : t("no")}`) }),
        table([
          { key: "replica", label: t("models.replica") }, { key: "pid", label: "PID", num: true },
          { key: "hash", label: t("models.hash") },
          { key: "current", label: t("models.current"), fmt: (v) => (v === undefined ? "—" : v ? t("yes") : t("no")) },
          { key: "loaded_at", label: t("models.loaded_at"), fmt: when }, { key: "error", label: t("error") },
        ], sync.workers && sync.workers.length ? sync.workers : [{ replica: t("models.this_process"), hash: sync.hash, current: true }]),
      );
    };
    main.append(h("div", { class: "row" }, h("button", { type: "button", id: "reload-config", text: t("models.reload"), onclick: async (e) => {
      e.target.disabled = true;
      try {
        const r = await api("/admin/config/reload", { method: "POST" });
        status.replaceChildren(h("div", { class: "notice", role: "status", text: t("models.reloaded", { hash: r.hash }) }));
        await load();
      } catch (err) { status.replaceChildren(errorBox(err)); }
      finally { e.target.disabled = false; }
    } })), status, body);
    await load();
  },
};
