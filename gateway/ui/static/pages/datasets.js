// Datasets of test cases: create one, import a CSV (or JSON/JSONL) file, read its cases at any
// version, export them.
import { t } from "../i18n.js";
import { h, field, table, when, errorBox, toast, select, saveBlob } from "../dom.js";
import { api, raw, ApiError } from "../api.js";

const enc = encodeURIComponent;
const FORMATS = { csv: "text/csv", json: "application/json", jsonl: "application/x-ndjson" };

function formatOf(file) {
  const ext = (file.name.split(".").pop() || "").toLowerCase();
  return FORMATS[ext] ? ext : "csv";
}

async function showDataset(out, ref, reload, version) {
  const ds = await api(`/api/datasets/${enc(ref)}`);
  const shown = version || ds.version;
  const cases = await api(`/api/datasets/${enc(ds.id)}/cases?version=${shown}`);
  const status = h("div", { "aria-live": "polite" });
  const file = h("input", { id: "ds-file", type: "file", accept: ".csv,.json,.jsonl,text/csv,application/json", required: true });
  const replace = h("input", { id: "ds-replace", type: "checkbox" });
  const versionSel = select({ id: "ds-version" }, Array.from({ length: ds.version }, (_, i) => ds.version - i).map((n) => [n, "v" + n]), shown);
  versionSel.addEventListener("change", () => showDataset(out, ds.id, reload, Number(versionSel.value)).catch((err) => out.replaceChildren(errorBox(err))));
  const importForm = h("form", { class: "row", onsubmit: async (e) => {
    e.preventDefault();
    const f = file.files[0];
    if (!f) return;
    const fmt = formatOf(f);
    try {
      const updated = await api(`/api/datasets/${enc(ds.id)}/import?format=${fmt}&replace=${replace.checked}`, { method: "POST", body: f, headers: { "content-type": FORMATS[fmt] } });
      toast(t("ds.imported", { n: updated.cases, v: updated.version }));
      await reload();
      await showDataset(out, ds.id, reload);
    } catch (err) { status.replaceChildren(errorBox(err)); }
  } }, field(t("ds.file"), file), h("label", { class: "inline" }, replace, t("ds.replace")),
  h("button", { type: "submit", id: "ds-import", text: t("ds.import") }));
  const exportCsv = h("button", { type: "button", class: "secondary", text: t("ds.export"), onclick: async () => {
    const r = await raw(`/api/datasets/${enc(ds.id)}/export?format=csv&version=${shown}`);
    if (!r.ok) { status.replaceChildren(errorBox(new ApiError(r.status, await r.json().catch(() => null)))); return; }
    saveBlob(await r.blob(), `${ds.name}-v${shown}.csv`);
  } });
  const vars = [...new Set(cases.data.flatMap((c) => Object.keys(c.vars || {})))];
  out.replaceChildren(
    h("h2", { tabindex: "-1", text: t("ds.dataset", { name: ds.name }) }),
    h("p", { class: "meta", text: `${t("ds.kind_" + ds.kind)} · ${t("ds.version")} v${ds.version} · ${t("ds.updated")} ${when(ds.updated_at)}` }),
    status,
    h("h3", { text: t("ds.import_title") }),
    h("p", { class: "meta", text: t("ds.csv_hint") }),
    importForm,
    h("h3", { text: t("ds.cases") }),
    h("div", { class: "row" }, field(t("ds.version"), versionSel), exportCsv, h("span", { class: "meta", "data-testid": "case-count", text: t("ds.case_count", { n: cases.data.length, v: shown }) })),
    table([
      { key: "input", label: t("ds.input"), fmt: (v) => h("span", { class: "clip", text: v || "—" }) },
      ...vars.map((k) => ({ key: "vars", label: k, fmt: (v) => (v && v[k] !== undefined ? (typeof v[k] === "string" ? v[k] : JSON.stringify(v[k])) : "—") })),
      { key: "expected", label: t("ds.expected"), fmt: (v) => (v === null || v === undefined ? "—" : typeof v === "string" ? v : JSON.stringify(v)) },
      { key: "assert", label: t("ds.assertions"), fmt: (a) => (a && a.length ? a.map((x) => x.type).join(", ") : "—") },
      { key: "tags", label: t("ds.tags"), fmt: (v) => (v && v.length ? v.join(", ") : "—") },
      { key: "verified", label: t("ds.verified"), fmt: (v) => (v ? t("yes") : t("no")) },
      { key: "version_added", label: t("ds.added_in"), num: true, fmt: (v) => "v" + v },
    ], cases.data));
  out.querySelector("h2").focus();
}

export default {
  id: "datasets",
  async render(main) {
    const list = h("div");
    const detail = h("section", { "aria-live": "polite" });
    const status = h("div", { "aria-live": "polite" });
    const name = h("input", { id: "ds-name", required: true, maxlength: 128 });
    const kind = select({ id: "ds-kind" }, [["golden", t("ds.kind_golden")], ["evaluation", t("ds.kind_evaluation")]], "golden");
    const description = h("input", { id: "ds-description", maxlength: 4000 });
    const tags = h("input", { id: "ds-tags", placeholder: "ko, support" });
    const open = (ref) => showDataset(detail, ref, load).catch((err) => detail.replaceChildren(errorBox(err)));
    const load = async () => {
      const sets = await api("/api/datasets?limit=500");
      list.replaceChildren(table([
        { key: "name", label: t("ds.name") },
        { key: "kind", label: t("ds.kind"), fmt: (k) => t("ds.kind_" + k) },
        { key: "version", label: t("ds.version"), num: true, fmt: (v) => "v" + v },
        { key: "tags", label: t("ds.tags"), fmt: (v) => (v && v.length ? v.join(", ") : "—") },
        { key: "description", label: t("prompts.description") },
        { key: "updated_at", label: t("ds.updated"), fmt: when },
        { key: "id", label: t("actions"), fmt: (id, d) => h("button", { type: "button", class: "secondary", text: t("prompts.open"), "aria-label": t("prompts.open_named", { name: d.name }), onclick: () => open(id) }) },
      ], sets.data));
    };
    const form = h("form", { class: "grid", onsubmit: async (e) => {
      e.preventDefault();
      try {
        const d = await api("/api/datasets", { method: "POST", json: { name: name.value.trim(), kind: kind.value, description: description.value.trim() || null,
          tags: tags.value.split(",").map((s) => s.trim()).filter(Boolean) } });
        toast(t("ds.created", { name: d.name }));
        form.reset();
        await load();
        await open(d.id);
      } catch (err) { status.replaceChildren(errorBox(err)); }
    } }, field(t("ds.name"), name), field(t("ds.kind"), kind), field(t("prompts.description"), description), field(t("ds.tags_hint"), tags),
    h("button", { type: "submit", id: "create-dataset", text: t("ds.create") }));
    main.append(h("h2", { text: t("ds.new") }), form, status, h("h2", { text: t("ds.list") }), list, detail);
    await load();
  },
};
