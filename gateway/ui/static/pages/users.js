import { t } from "../i18n.js";
import { h, table, when, errorBox, toast, field } from "../dom.js";
import { api } from "../api.js";

export default {
  id: "users",
  admin: true,
  async render(main) {
    const status = h("div", { "aria-live": "polite" });
    const list = h("div");
    const search = h("input", { id: "user-search", type: "search" });
    const patch = async (id, body) => {
      try { await api(`/admin/users/${encodeURIComponent(id)}`, { method: "PATCH", json: body }); toast(t("saved")); await load(); }
      catch (err) { status.replaceChildren(errorBox(err)); }
    };
    const load = async () => {
      const q = search.value.trim() ? `&email=${encodeURIComponent(search.value.trim())}` : "";
      const users = await api(`/admin/users?limit=200${q}`);
      list.replaceChildren(h("p", { class: "meta", text: t("users.total", { n: users.total }) }), table([
        { key: "email", label: t("users.email") },
        { key: "role", label: t("users.role"), fmt: (v, r) => {
          const s = h("select", { "aria-label": t("users.role") + " " + r.email, onchange: () => patch(r.id, { role: s.value }) },
            ["user", "admin"].map((x) => h("option", { value: x, selected: x === v, text: t("role." + x) })));
          return s;
        } },
        { key: "tier", label: t("users.tier"), fmt: (v, r) => {
          const i = h("input", { value: v, size: 10, "aria-label": t("users.tier") + " " + r.email, onchange: () => patch(r.id, { tier: i.value.trim() }) });
          return i;
        } },
        { key: "disabled", label: t("users.state"), fmt: (v) => h("span", { class: "badge " + (v ? "bad" : "ok"), text: v ? t("users.disabled") : t("users.enabled") }) },
        { key: "created_at", label: t("keys.created"), fmt: when },
        { key: "id", label: t("actions"), fmt: (id, r) => h("button", { type: "button", class: r.disabled ? "secondary" : "danger", text: r.disabled ? t("users.enable") : t("users.disable"), onclick: () => patch(id, { disabled: !r.disabled }) }) },
      ], users.data));
    };
    main.append(h("form", { class: "row", role: "search", onsubmit: (e) => { e.preventDefault(); load(); } }, field(t("users.search"), search), h("button", { type: "submit", text: t("search") })), status, list);
    await load();
  },
};
