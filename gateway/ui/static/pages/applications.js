// Applications: a model (or alias, `auto`) bound to a prompt and options, called as `app:<name>`.
// Create one, list them, try one with its variables, delete.
import { t } from "../i18n.js";
import { h, field, table, when, num, usd, errorBox, toast, select } from "../dom.js";
import { api } from "../api.js";

const enc = encodeURIComponent;

export async function modelIds() {
  const listed = await api("/v1/models").catch(() => ({ data: [] }));
  return [...new Set(["auto", ...listed.data.map((m) => m.id)])];
}

async function tryApp(out, app, prompt) {
  const active = prompt && prompt.active_version;
  const vars = (active ? active.variables : []).map((v) => [v, h("input", { id: "var-" + v, "data-var": v })]);
  const message = h("textarea", { id: "app-message", rows: 2 });
  const answer = h("div", { "aria-live": "polite" });
  out.replaceChildren(h("h2", { tabindex: "-1", text: t("apps.try", { name: app.name }) }),
    h("p", { class: "meta", text: t("apps.try_hint", { name: app.name }) }),
    h("form", { class: "grid", onsubmit: async (e) => {
      e.preventDefault();
      const body = { variables: Object.fromEntries(vars.map(([k, el]) => [k, el.value])), messages: message.value.trim() ? [{ role: "user", content: message.value }] : [] };
      answer.replaceChildren(h("p", { class: "meta", text: "…" }));
      try {
        const r = await api(`/v1/apps/${enc(app.name)}/run`, { method: "POST", json: body });
        answer.replaceChildren(h("div", { class: "answer", "data-testid": "app-answer", text: r.choices[0].message.content || "" }),
          h("p", { class: "meta", text: `${t("pg.served")}: ${r.model} · ${t("m.tokens")}: ${r.usage ? r.usage.total_tokens : "—"}` }));
      } catch (err) { answer.replaceChildren(errorBox(err)); }
    } }, vars.map(([k, el]) => field(k, el)), field(t("pg.prompt"), message), h("button", { type: "submit", text: t("apps.run") })),
    answer);
  out.querySelector("h2").focus();
}

// One level of nesting flattened ("feedback.count"), arrays and deeper objects left out.
function flat(row) {
  const out = {};
  for (const [k, v] of Object.entries(row)) {
    if (v && typeof v === "object" && !Array.isArray(v)) Object.entries(v).forEach(([k2, v2]) => { if (v2 === null || typeof v2 !== "object") out[`${k}.${k2}`] = v2; });
    else if (Array.isArray(v)) out[k] = v.every((x) => typeof x !== "object") ? v.join(" – ") : null;
    else out[k] = v;
  }
  return out;
}

function genericTable(rows, names) {
  const flatRows = rows.map(flat);
  const keys = [...new Set(flatRows.flatMap((r) => Object.keys(r)))].filter((k) => !k.endsWith("_id") || k === "prompt_version_id");
  return h("div", { class: "scroll" }, table(keys.map((k) => ({ key: k, label: k.replace(/[_.]/g, " "), num: flatRows.some((r) => typeof r[k] === "number"),
    fmt: (v) => (k === "prompt_version_id" ? names[v] || v || "—" : typeof v === "number" ? (k.includes("cost") ? usd(v) : num(v, 3)) : v) })), flatRows));
}

// GET /api/applications/{id}/quality: its product traffic (online) next to its evaluation runs (offline).
async function showQuality(out, app) {
  const [q, versions] = await Promise.all([api(`/api/applications/${enc(app.id)}/quality`),
    api(`/api/prompts/${enc(app.prompt_id)}/versions`).catch(() => ({ data: [] }))]);
  const names = Object.fromEntries(versions.data.map((v) => [v.id, "v" + v.version]));
  out.replaceChildren(h("h2", { tabindex: "-1", text: t("apps.quality_of", { name: app.name }) }),
    h("h3", { text: t("apps.online") }), genericTable(q.online || [], names),
    h("h3", { text: t("apps.offline") }), genericTable(q.offline || [], names),
    h("details", {}, h("summary", { text: t("exp.raw") }), h("pre", { class: "json", text: JSON.stringify(q, null, 2) })));
  out.querySelector("h2").focus();
}

export default {
  id: "applications",
  async render(main) {
    const [models, prompts] = await Promise.all([modelIds(), api("/api/prompts?limit=500")]);
    const promptById = Object.fromEntries(prompts.data.map((p) => [p.id, p]));
    const list = h("div");
    const status = h("div", { "aria-live": "polite" });
    const detail = h("section", { "aria-live": "polite" });
    const name = h("input", { id: "app-name", required: true, maxlength: 64 });
    const description = h("input", { id: "app-description", maxlength: 4000 });
    const model = select({ id: "app-model" }, models, "auto");
    const prompt = select({ id: "app-prompt", required: true }, [["", t("apps.pick_prompt")], ...prompts.data.map((p) => [p.id, p.name])], "");
    const pinned = select({ id: "app-pinned" }, [["", t("apps.follow_active")]], "");
    const temperature = h("input", { id: "app-temperature", type: "number", min: 0, max: 2, step: 0.1 });
    const maxTokens = h("input", { id: "app-max-tokens", type: "number", min: 1 });
    const shared = h("input", { id: "app-shared", type: "checkbox" });
    prompt.addEventListener("change", async () => {
      pinned.replaceChildren(h("option", { value: "", text: t("apps.follow_active") }));
      if (!prompt.value) return;
      const versions = await api(`/api/prompts/${enc(prompt.value)}/versions`).catch(() => ({ data: [] }));
      versions.data.forEach((v) => pinned.append(h("option", { value: v.version, text: t("apps.pin_v", { n: v.version }) })));
    });
    const load = async () => {
      const apps = await api("/api/applications?limit=500");
      list.replaceChildren(table([
        { key: "name", label: t("apps.name") },
        { key: "model", label: t("dim.model") },
        { key: "prompt_id", label: t("apps.prompt"), fmt: (id) => (promptById[id] ? promptById[id].name : id) },
        { key: "pinned_version_id", label: t("apps.version"), fmt: (id, a) => {
          const p = promptById[a.prompt_id];
          return id ? t("apps.pinned") : t("apps.active_v", { n: p && p.active_version ? p.active_version.version : "?" });
        } },
        { key: "options", label: t("apps.options"), fmt: (o) => (Object.keys(o || {}).length ? Object.entries(o).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ") : "—") },
        { key: "shared", label: t("apps.shared"), fmt: (v) => (v ? t("yes") : t("no")) },
        { key: "created_at", label: t("keys.created"), fmt: when },
        { key: "id", label: t("actions"), fmt: (id, a) => h("span", { class: "row tight" },
          h("button", { type: "button", class: "secondary", text: t("apps.try_button"), "aria-label": t("apps.try", { name: a.name }), onclick: () => tryApp(detail, a, promptById[a.prompt_id]).catch((err) => detail.replaceChildren(errorBox(err))) }),
          h("button", { type: "button", class: "secondary", text: t("apps.quality"), "aria-label": t("apps.quality_of", { name: a.name }), onclick: () => showQuality(detail, a).catch((err) => detail.replaceChildren(errorBox(err))) }),
          h("button", { type: "button", class: "danger", text: t("apps.delete"), "aria-label": `${t("apps.delete")} ${a.name}`, onclick: async () => {
            if (!confirm(t("apps.confirm_delete", { name: a.name }))) return;
            try { await api(`/api/applications/${enc(id)}`, { method: "DELETE" }); toast(t("apps.deleted")); detail.replaceChildren(); await load(); }
            catch (err) { status.replaceChildren(errorBox(err)); }
          } })) },
      ], apps.data));
    };
    const form = h("form", { class: "grid", onsubmit: async (e) => {
      e.preventDefault();
      const options = {};
      if (temperature.value) options.temperature = Number(temperature.value);
      if (maxTokens.value) options.max_tokens = Number(maxTokens.value);
      const body = { name: name.value.trim(), description: description.value.trim() || null, model: model.value, prompt: prompt.value,
        pinned_version: pinned.value || null, options, shared: shared.checked };
      try {
        const a = await api("/api/applications", { method: "POST", json: body });
        status.replaceChildren(h("div", { class: "notice", role: "status", text: t("apps.created", { name: a.name }) }));
        form.reset();
        await load();
      } catch (err) { status.replaceChildren(errorBox(err)); }
    } },
    field(t("apps.name"), name), field(t("prompts.description"), description), field(t("dim.model"), model), field(t("apps.prompt"), prompt),
    field(t("apps.version"), pinned), field(t("apps.temperature"), temperature), field(t("apps.max_tokens"), maxTokens),
    h("label", { class: "inline" }, shared, t("apps.shared_hint")), h("button", { type: "submit", id: "create-app", text: t("apps.create") }));
    main.append(h("h2", { text: t("apps.new") }), prompts.data.length ? form : h("p", { class: "notice", text: t("apps.no_prompts") }), status,
      h("h2", { text: t("apps.list") }), list, detail);
    await load();
  },
};
