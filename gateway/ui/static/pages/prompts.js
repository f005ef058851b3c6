// Prompts and their immutable versions: create a prompt, add a version, compare two versions
// (unified diff, variables added/removed), activate one, roll back, and the activation history.
import { t } from "../i18n.js";
import { h, field, table, when, errorBox, toast, select, badge } from "../dom.js";
import { api } from "../api.js";

const ROLES = ["system", "developer", "user", "assistant"];
const enc = encodeURIComponent;

// One row per message (role + text), rows can be added and removed; value() gives the API's list.
export function messagesEditor(id, initial) {
  const rows = h("div", { class: "messages" });
  const add = (role, content) => {
    const n = rows.children.length + 1;
    const roleSel = select({ id: `${id}-role-${n}`, "data-role": "" }, ROLES.map((r) => [r, t("prompts.role_" + r)]), role);
    const text = h("textarea", { id: `${id}-text-${n}`, rows: 4, "data-content": "", text: content || "" });
    const row = h("div", { class: "message" },
      field(t("prompts.role"), roleSel), h("label", { class: "grow" }, h("span", { text: t("prompts.message_n", { n }) }), text),
      h("button", { type: "button", class: "secondary", "aria-label": t("prompts.remove_message", { n }), text: "×", onclick: () => { if (rows.children.length > 1) row.remove(); } }));
    rows.append(row);
  };
  (initial && initial.length ? initial : [{ role: "system", content: "" }]).forEach((m) => add(m.role, m.content));
  const el = h("fieldset", { class: "editor" }, h("legend", { text: t("prompts.messages") }), rows,
    h("p", { class: "meta", text: t("prompts.variables_hint") }),
    h("button", { type: "button", class: "secondary", text: t("prompts.add_message"), onclick: () => add("user", "") }));
  const value = () => [...rows.children].map((r) => ({ role: r.querySelector("[data-role]").value, content: r.querySelector("[data-content]").value }))
    .filter((m) => m.content.trim());
  return { el, value };
}

function diffView(d) {
  const lines = d.diff ? d.diff.split("\n") : [];
  const cls = (line) => (line.startsWith("+++") || line.startsWith("---") ? "hdr" : line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : line.startsWith("@@") ? "hunk" : null);
  return h("div", { "data-testid": "diff" },
    h("p", { text: t("prompts.diff_of", { from: d.from, to: d.to }) }),
    lines.length ? h("pre", { class: "diff", "aria-label": t("prompts.diff") }, lines.map((l) => h("span", { class: cls(l), text: l + "\n" })))
      : h("p", { class: "notice", text: t("prompts.same") }),
    h("p", { class: "meta", text: `${t("prompts.vars_added")}: ${d.variables_added.join(", ") || "—"} · ${t("prompts.vars_removed")}: ${d.variables_removed.join(", ") || "—"}` }));
}

async function showPrompt(out, ref, reload) {
  const [prompt, versions, history] = await Promise.all([
    api(`/api/prompts/${enc(ref)}`), api(`/api/prompts/${enc(ref)}/versions`), api(`/api/prompts/${enc(ref)}/activations`)]);
  const rows = versions.data.slice().sort((a, b) => b.version - a.version);
  const numberOf = Object.fromEntries(rows.map((v) => [v.id, v.version]));
  const status = h("div", { "aria-live": "polite" });
  const diffOut = h("div", { "aria-live": "polite" });
  const again = async (message) => { toast(message); await showPrompt(out, prompt.id, reload); await reload(); };
  const act = (label, path) => async () => {
    try { await api(path, { method: "POST", json: {} }); await again(label); } catch (err) { status.replaceChildren(errorBox(err)); }
  };
  const showDiff = async (a, b) => {
    try { diffOut.replaceChildren(diffView(await api(`/api/prompts/${enc(prompt.id)}/diff?from=${enc(a)}&to=${enc(b)}`))); }
    catch (err) { diffOut.replaceChildren(errorBox(err)); }
  };
  const active = prompt.active_version;
  const numbers = rows.map((v) => [v.version, "v" + v.version]);
  const from = select({ id: "diff-from" }, numbers, rows.length > 1 ? rows[1].version : rows[0] && rows[0].version);
  const to = select({ id: "diff-to" }, numbers, rows[0] && rows[0].version);
  const editor = messagesEditor("pv", active ? active.messages : []);
  const note = h("input", { id: "pv-note", maxlength: 4000 });
  const activate = h("input", { id: "pv-activate", type: "checkbox" });
  const versionForm = h("form", { class: "stack", onsubmit: async (e) => {
    e.preventDefault();
    try {
      const v = await api(`/api/prompts/${enc(prompt.id)}/versions`, { method: "POST", json: { messages: editor.value(), note: note.value.trim() || null, activate: activate.checked } });
      await again(t("prompts.version_created", { n: v.version }));
    } catch (err) { status.replaceChildren(errorBox(err)); }
  } }, editor.el, h("div", { class: "row" }, field(t("prompts.note"), note),
    h("label", { class: "inline" }, activate, t("prompts.activate_now")),
    h("button", { type: "submit", id: "create-version", text: t("prompts.create_version") })));

  out.replaceChildren(
    h("h2", { tabindex: "-1", text: t("prompts.prompt", { name: prompt.name }) }),
    h("p", { class: "meta", text: prompt.description || "" }),
    status,
    h("h3", { text: t("prompts.versions") }),
    table([
      { key: "version", label: t("prompts.version"), fmt: (v) => "v" + v },
      { key: "active", label: t("prompts.state"), fmt: (a) => (a ? badge("active", t("prompts.active"), { "data-testid": "active-version" }) : "") },
      { key: "note", label: t("prompts.note") },
      { key: "variables", label: t("prompts.variables"), fmt: (v) => (v.length ? v.join(", ") : "—") },
      { key: "messages", label: t("prompts.messages"), fmt: (m) => h("span", { class: "clip", text: m.map((x) => `[${x.role}] ${x.content}`).join(" ") }) },
      { key: "created_at", label: t("keys.created"), fmt: when },
      { key: "version", label: t("actions"), fmt: (n, v) => h("span", { class: "row tight" },
        v.active ? null : h("button", { type: "button", text: t("prompts.activate"), "aria-label": t("prompts.activate_v", { n }), onclick: act(t("prompts.activated", { n }), `/api/prompts/${enc(prompt.id)}/versions/${n}/activate`) }),
        active && !v.active ? h("button", { type: "button", class: "secondary", text: t("prompts.diff_active"), "aria-label": t("prompts.diff_active_v", { n }), onclick: () => showDiff(active.version, n) }) : null) },
    ], rows),
    h("div", { class: "row" },
      h("button", { type: "button", class: "secondary", id: "rollback", text: t("prompts.rollback"), disabled: history.data.length < 2 ? true : null,
        onclick: act(t("prompts.rolled_back"), `/api/prompts/${enc(prompt.id)}/rollback`) }),
      h("span", { class: "meta", text: t("prompts.rollback_hint") })),
    h("h3", { text: t("prompts.compare") }),
    h("form", { class: "row", onsubmit: (e) => { e.preventDefault(); showDiff(from.value, to.value); } },
      field(t("prompts.from"), from), field(t("prompts.to"), to), h("button", { type: "submit", id: "show-diff", text: t("prompts.show_diff") })),
    diffOut,
    h("h3", { text: t("prompts.new_version") }),
    versionForm,
    h("h3", { text: t("prompts.history") }),
    table([
      { key: "created_at", label: t("prompts.when"), fmt: when },
      { key: "version_id", label: t("prompts.activated_version"), fmt: (id) => "v" + (numberOf[id] ?? "?") },
      { key: "previous_version_id", label: t("prompts.previous"), fmt: (id) => (id ? "v" + (numberOf[id] ?? "?") : "—") },
    ], history.data.slice().reverse()));
  out.querySelector("h2").focus();
}

export default {
  id: "prompts",
  async render(main) {
    const list = h("div");
    const detail = h("section", { "aria-live": "polite" });
    const status = h("div", { "aria-live": "polite" });
    const name = h("input", { id: "prompt-name", required: true, maxlength: 128, pattern: "[A-Za-z0-9][A-Za-z0-9._\\-]*" });
    const description = h("input", { id: "prompt-description", maxlength: 4000 });
    const editor = messagesEditor("np", []);
    const open = (ref) => showPrompt(detail, ref, load).catch((err) => detail.replaceChildren(errorBox(err)));
    const load = async () => {
      const prompts = await api("/api/prompts?limit=500");
      list.replaceChildren(table([
        { key: "name", label: t("prompts.name") },
        { key: "active_version", label: t("prompts.active_version"), fmt: (v) => (v ? "v" + v.version : "—") },
        { key: "active_version", label: t("prompts.variables"), fmt: (v) => (v && v.variables.length ? v.variables.join(", ") : "—") },
        { key: "description", label: t("prompts.description") },
        { key: "created_at", label: t("keys.created"), fmt: when },
        { key: "id", label: t("actions"), fmt: (id, p) => h("button", { type: "button", class: "secondary", text: t("prompts.open"), "aria-label": t("prompts.open_named", { name: p.name }), onclick: () => open(id) }) },
      ], prompts.data));
      if (!prompts.data.length) create.open = true;
    };
    const form = h("form", { class: "stack", onsubmit: async (e) => {
      e.preventDefault();
      const messages = editor.value();
      try {
        const p = await api("/api/prompts", { method: "POST", json: { name: name.value.trim(), description: description.value.trim() || null, messages: messages.length ? messages : null, note: null } });
        toast(t("prompts.created", { name: p.name }));
        form.reset();
        await load();
        await open(p.id);
      } catch (err) { status.replaceChildren(errorBox(err)); }
    } }, h("div", { class: "row" }, field(t("prompts.name"), name), field(t("prompts.description"), description)), editor.el,
    h("div", { class: "row" }, h("button", { type: "submit", id: "create-prompt", text: t("prompts.create") })));
    const create = h("details", { class: "create" }, h("summary", { text: t("prompts.new") }), form);
    main.append(create, status,
      h("h2", { text: t("prompts.list") }), list, detail);
    await load();
  },
};
