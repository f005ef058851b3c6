// Evaluation runs: compare prompt versions (or applications) × models on a dataset; watch the run's
// progress; read each variant's pass rate with its 95% interval, the verdict against the baseline
// (McNemar, paired t) and the cases that changed, side by side.
import { t } from "../i18n.js";
import { h, field, table, when, num, pct, usd, ms, errorBox, toast, select, badge, progress, poll } from "../dom.js";
import { api } from "../api.js";
import { modelIds } from "./applications.js";

const enc = encodeURIComponent;
const ASSERTIONS = ["icontains", "contains", "equals", "not-contains", "regex", "is-json", "similar", "llm-rubric", "latency", "cost"];
const FINAL = new Set(["completed", "budget_exceeded", "cancelled", "failed"]);

const ci = (pair, fmt = pct) => (pair && pair[0] !== null && pair[1] !== null ? `${fmt(pair[0])} – ${fmt(pair[1])}` : "—");
const passBadge = (v) => (v === null || v === undefined ? "—" : v ? badge("pass", t("ev.pass")) : badge("fail", t("ev.fail")));
const statusBadge = (s) => badge(s, t("ev.status_" + s), { "data-testid": "run-status" });

function verdictBadge(v) {
  const key = v === "better" ? "better" : v === "worse" ? "worse" : "same";
  return badge(key === "same" ? "none" : key, t("ev.verdict_" + key), { "data-testid": "verdict" });
}

async function showRun(out, id, reload) {
  const run = await api(`/api/evaluations/${enc(id)}`);
  const head = h("div");
  const body = h("div");
  out.replaceChildren(h("h2", { tabindex: "-1", text: t("ev.run", { name: run.name }) }), head, body);
  out.querySelector("h2").focus();
  const drawHead = (r) => head.replaceChildren(
    h("p", { class: "row" }, statusBadge(r.status), progress(r.progress.done, r.progress.total, t("ev.progress")),
      h("span", { class: "meta", text: `${t("ev.spent")}: ${usd(r.spent_usd)}${r.max_cost_usd !== null && r.max_cost_usd !== undefined ? " / " + usd(r.max_cost_usd) : ""}` }),
      FINAL.has(r.status) ? null : h("button", { type: "button", class: "danger", id: "cancel-run", text: t("ev.cancel"), onclick: async () => {
        try { await api(`/api/evaluations/${enc(r.id)}/cancel`, { method: "POST", json: {} }); toast(t("ev.cancelled")); } catch (err) { head.append(errorBox(err)); }
      } })),
    ...(r.error ? [h("div", { class: "error", role: "alert", text: r.error })] : []));
  drawHead(run);
  if (!FINAL.has(run.status)) {
    body.replaceChildren(h("p", { class: "meta", text: t("ev.watching") }));
    await new Promise((resolve) => poll(out, 1000, async () => {
      const r = await api(`/api/evaluations/${enc(id)}`);
      drawHead(r);
      if (FINAL.has(r.status)) { resolve(); return false; }
      return true;
    }));
    if (!out.isConnected) return;
    await reload();
  }
  await drawReport(body, id);
}

async function drawReport(body, id) {
  const [report, results] = await Promise.all([api(`/api/evaluations/${enc(id)}/report`), api(`/api/evaluations/${enc(id)}/results`)]);
  const run = report.run;
  const cases = run.dataset_id
    ? await api(`/api/datasets/${enc(run.dataset_id)}/cases?version=${run.dataset_version}`).then((r) => r.data).catch(() => [])
    : [];
  const inputOf = Object.fromEntries(cases.map((c) => [c.id, c.input || JSON.stringify(c.vars)]));
  const resultOf = {};
  results.data.forEach((r) => { resultOf[`${r.variant}\u0000${r.case_id}`] = r; });
  const describe = Object.fromEntries(run.variants.map((v) => [v.label,
    [v.application ? `app ${v.application}` : null, v.prompt_version ? `v${v.prompt_version}` : null, v.model].filter(Boolean).join(" · ")]));
  const variants = Object.entries(report.variants).map(([label, s]) => ({ label, ...s }));
  const comps = Object.entries(report.comparisons).map(([label, c]) => ({ label, ...c }));
  const output = (r) => (r ? h("div", {}, passBadge(r.pass), " ", h("span", { class: "out", text: r.error ? `${t("error")}: ${r.error}` : (r.output ?? "—") }),
    r.assertions && r.assertions.length ? h("div", { class: "meta", text: r.assertions.map((a) => `${a.type}: ${a.pass ? "✓" : "✗"}${a.reason ? " " + a.reason : ""}`).join(" · ") }) : null) : "—");
  body.replaceChildren(
    h("h3", { text: t("ev.variants") }),
    table([
      { key: "label", label: t("ev.variant"), fmt: (l) => h("span", {}, h("strong", { text: l }), l === report.baseline ? h("span", { class: "meta", text: " " + t("ev.baseline_mark") }) : null, h("div", { class: "meta", text: describe[l] || "" })) },
      { key: "cases", label: t("ev.cases"), num: true, fmt: num },
      { key: "passed", label: t("ev.passed"), num: true, fmt: num },
      { key: "errors", label: t("m.errors"), num: true, fmt: num },
      { key: "pass_rate", label: t("ev.pass_rate"), num: true, fmt: (v) => h("strong", { "data-testid": "pass-rate", text: pct(v) }) },
      { key: "pass_rate_ci95", label: t("ev.ci"), num: true, fmt: (v) => ci(v) },
      { key: "mean_score", label: t("ev.score"), num: true, fmt: (v) => num(v, 3) },
      { key: "cost_usd", label: t("m.cost"), num: true, fmt: usd },
      { key: "latency_ms_p50", label: t("m.p50"), num: true, fmt: ms },
      { key: "latency_ms_p95", label: t("m.p95"), num: true, fmt: ms },
    ], variants),
    h("h3", { text: t("ev.against", { name: report.baseline || "—" }) }),
    h("p", { class: "meta", text: t("ev.significance_hint") }),
    table([
      { key: "label", label: t("ev.variant") },
      { key: "verdict", label: t("exp.verdict"), fmt: verdictBadge },
      { key: "paired_cases", label: t("ev.paired"), num: true, fmt: num },
      { key: "pass_rate_delta", label: t("ev.delta"), num: true, fmt: (v) => (v === null ? "—" : (v > 0 ? "+" : "") + pct(v)) },
      { key: "pass_rate_delta_ci95", label: t("ev.ci"), num: true, fmt: (v) => ci(v) },
      { key: "mcnemar", label: t("ev.mcnemar"), num: true, fmt: (m) => `${m.baseline_only} / ${m.candidate_only} · p = ${num(m.p_value, 4)}` },
      { key: "score_paired_t", label: t("ev.paired_t"), num: true, fmt: (s) => (s.p_value === null ? "—" : `Δ ${num(s.mean_delta, 3)} · p = ${num(s.p_value, 4)}`) },
    ], comps),
    ...comps.map((c) => h("section", { class: "changed" },
      h("h3", { text: t("ev.changed", { name: c.label, n: c.changed_cases.length }) }),
      table([
        { key: "case_id", label: t("ds.input"), fmt: (id) => h("span", { class: "clip", text: inputOf[id] || id }) },
        { key: "case_id", label: `${report.baseline} (${t("ev.baseline")})`, fmt: (cid) => output(resultOf[`${report.baseline}\u0000${cid}`]) },
        { key: "case_id", label: c.label, fmt: (cid) => output(resultOf[`${c.label}\u0000${cid}`]) },
        { key: "score_delta", label: t("ev.score_delta"), num: true, fmt: (v) => num(v, 3) },
      ], c.changed_cases))),
    h("details", {}, h("summary", { text: t("ev.all_results", { n: results.data.length }) }),
      table([
        { key: "case_id", label: t("ds.input"), fmt: (id) => h("span", { class: "clip", text: inputOf[id] || id }) },
        ...Object.keys(report.variants).map((label) => ({ key: "case_id", label, fmt: (cid) => output(resultOf[`${label}\u0000${cid}`]) })),
      ], [...new Set(results.data.map((r) => r.case_id))].map((case_id) => ({ case_id })))));
}

function variantRow(n, prompts, models, defaults) {
  const prompt = select({ id: `var-prompt-${n}`, "aria-label": t("ev.variant_prompt", { n }) }, prompts.map((p) => [p.id, p.name]), defaults.prompt);
  const version = select({ id: `var-version-${n}`, "aria-label": t("ev.variant_version", { n }) }, [], "");
  const model = select({ id: `var-model-${n}`, "aria-label": t("ev.variant_model", { n }) }, models, defaults.model);
  const label = h("input", { id: `var-label-${n}`, "aria-label": t("ev.variant_label", { n }), maxlength: 64 });
  const fill = async (want) => {
    // newest first; `want` is "active", "other" (the newest that is not active) or a number
    const versions = prompt.value ? (await api(`/api/prompts/${enc(prompt.value)}/versions`)).data.slice().sort((a, b) => b.version - a.version) : [];
    const pick = (want === "active" ? versions.find((v) => v.active) : want === "other" ? versions.find((v) => !v.active) : versions.find((v) => String(v.version) === String(want))) || versions[0];
    version.replaceChildren(...versions.map((v) => h("option", { value: v.version, selected: v === pick ? true : null, text: `v${v.version}${v.active ? " (" + t("prompts.active") + ")" : ""}` })));
    label.placeholder = `v${version.value || "?"}`;
  };
  prompt.addEventListener("change", () => fill());
  version.addEventListener("change", () => { label.placeholder = `v${version.value}`; });
  const row = h("tr", {}, h("td", { text: n === 1 ? t("ev.baseline") : t("ev.candidate") }), h("td", {}, prompt), h("td", {}, version), h("td", {}, model), h("td", {}, label));
  const value = () => ({ label: label.value.trim(), prompt: prompt.value, prompt_version: version.value, model: model.value,
    names: [`v${version.value}`, `v${version.value}:${model.value}`, `${prompt.selectedOptions[0].text}@v${version.value}:${model.value}`] });
  return { row, value, ready: fill(defaults.version) };
}

async function newRunForm(onCreated) {
  const [prompts, datasets, models] = await Promise.all([api("/api/prompts?limit=500"), api("/api/datasets?limit=500"), modelIds()]);
  if (!prompts.data.length || !datasets.data.length) return h("p", { class: "notice", text: t("ev.need_prompt_dataset") });
  const status = h("div", { "aria-live": "polite" });
  const name = h("input", { id: "ev-name", required: true, maxlength: 200 });
  const dataset = select({ id: "ev-dataset" }, datasets.data.map((d) => [d.id, `${d.name} (v${d.version})`]), datasets.data[0].id);
  const model = models[0]; // "auto"; pick one model for a comparison of prompts alone
  prompts.data.sort((a, b) => b.created_at.localeCompare(a.created_at)); // the newest prompt first
  const first = prompts.data[0];
  const rows = [];
  const tbody = h("tbody");
  const addRow = (defaults) => { const r = variantRow(rows.length + 1, prompts.data, models, defaults); rows.push(r); tbody.append(r.row); return r.ready; };
  await Promise.all([addRow({ prompt: first.id, version: "active", model }), addRow({ prompt: first.id, version: "other", model })]);
  const assertType = select({ id: "ev-assert-type" }, ASSERTIONS, "icontains");
  const assertValue = h("input", { id: "ev-assert-value", value: "{{expected}}" });
  // llm-rubric needs a judge model, similar an embedding model: one field, shown for those two
  const checkModel = h("input", { id: "ev-check-model", list: "ev-models" });
  const checkField = field(t("ev.check_model"), checkModel);
  const syncCheck = () => {
    checkField.hidden = !["llm-rubric", "similar"].includes(assertType.value);
    checkModel.value = assertType.value === "similar" ? "prism-embed" : assertType.value === "llm-rubric" ? model : "";
    if (assertType.value === "llm-rubric") assertValue.value = t("ev.rubric_example");
    else if (assertValue.value === t("ev.rubric_example")) assertValue.value = "{{expected}}";
  };
  assertType.addEventListener("change", syncCheck);
  const maxCost = h("input", { id: "ev-max-cost", type: "number", min: 0, step: 0.01, value: "1" });
  const concurrency = h("input", { id: "ev-concurrency", type: "number", min: 1, max: 64, value: "4" });
  const form = h("form", { class: "stack", onsubmit: async (e) => {
    e.preventDefault();
    // An unlabelled row is named by the shortest of "v2", "v2:model", "prompt@v2:model" that no other row has.
    const values = rows.map((r) => r.value());
    const variants = values.map(({ names, ...v }, i) => {
      if (v.label) return v;
      const others = values.filter((_, j) => j !== i);
      const clash = (n) => others.some((o) => o.label === n || (!o.label && o.names.includes(n)));
      return { ...v, label: names.find((n) => !clash(n)) || names[2] + "#" + (i + 1) };
    });
    const type = assertType.value;
    const assertion = { type };
    if (["latency", "cost"].includes(type)) assertion.threshold = Number(assertValue.value);
    else if (type !== "is-json") assertion.value = assertValue.value;
    const spec = { name: name.value.trim(), dataset: dataset.value, variants, baseline: variants[0].label, assert: [assertion],
      max_cost_usd: maxCost.value === "" ? null : Number(maxCost.value), concurrency: Number(concurrency.value) || 4 };
    if (type === "llm-rubric") spec.judge_model = checkModel.value.trim();
    if (type === "similar") spec.embedding_model = checkModel.value.trim();
    try {
      const run = await api("/api/evaluations", { method: "POST", json: spec });
      toast(t("ev.started", { name: run.name }));
      await onCreated(run.id);
    } catch (err) { status.replaceChildren(errorBox(err)); }
  } },
  h("div", { class: "row" }, field(t("ev.name"), name), field(t("ev.dataset"), dataset)),
  h("table", { class: "variants" }, h("caption", { class: "meta", text: t("ev.variants_hint") }),
    h("thead", {}, h("tr", {}, [t("ev.role"), t("apps.prompt"), t("prompts.version"), t("dim.model"), t("ev.label")].map((c) => h("th", { scope: "col", text: c })))), tbody),
  h("div", { class: "row" },
    h("button", { type: "button", class: "secondary", id: "add-variant", text: t("ev.add_variant"), onclick: () => { if (rows.length < 8) addRow({ prompt: first.id, version: "other", model }); } }),
    field(t("ev.assert_type"), assertType), field(t("ev.assert_value"), assertValue), checkField,
    h("datalist", { id: "ev-models" }, [...models, "prism-embed"].map((m) => h("option", { value: m }))), field(t("ev.max_cost"), maxCost), field(t("ev.concurrency"), concurrency),
    h("button", { type: "submit", id: "start-run", text: t("ev.start") })),
  h("p", { class: "meta", text: t("ev.assert_hint") }), status);
  syncCheck();
  return form;
}

export default {
  id: "evaluations",
  async render(main) {
    const list = h("div");
    const detail = h("section", { "aria-live": "polite" });
    let watching = false;
    const open = (id) => showRun(detail, id, load).catch((err) => detail.replaceChildren(errorBox(err)));
    const load = async () => {
      const runs = await api("/api/evaluations?limit=100");
      list.replaceChildren(table([
        { key: "name", label: t("ev.name") },
        { key: "status", label: t("ev.status"), fmt: (s) => badge(s, t("ev.status_" + s)) },
        { key: "progress", label: t("ev.progress"), fmt: (p) => progress(p.done, p.total, t("ev.progress")) },
        { key: "variants", label: t("ev.variants"), fmt: (vs) => vs.map((v) => v.label).join(", ") },
        { key: "spent_usd", label: t("ev.spent"), num: true, fmt: usd },
        { key: "created_at", label: t("keys.created"), fmt: when },
        { key: "id", label: t("actions"), fmt: (id, r) => h("button", { type: "button", class: "secondary", text: t("exp.open"), "aria-label": t("ev.open_named", { name: r.name }), onclick: () => open(id) }) },
      ], runs.data));
      // runs still queued or running: the list follows them (every 2 s) until they end
      if (runs.data.some((r) => !FINAL.has(r.status)) && !watching) {
        watching = true;
        poll(list, 2000, async () => { const live = (await load()).some((r) => !FINAL.has(r.status)); watching = live; return live; });
      }
      return runs.data;
    };
    const create = h("details", { class: "create" }, h("summary", { text: t("ev.new") }), await newRunForm(async (id) => { create.open = false; await load(); await open(id); }));
    main.append(create, h("h2", { text: t("ev.list") }), list, detail);
    const runs = await load();
    if (!runs.length) create.open = true;
  },
};
