import { t } from "../i18n.js";
import { h, table, field, when, errorBox, toast } from "../dom.js";
import { api } from "../api.js";

export default {
  id: "keys",
  async render(main) {
    const list = h("div");
    const status = h("div", { "aria-live": "polite" });
    const name = h("input", { id: "key-name", required: true, maxlength: 128 });
    const models = h("input", { id: "key-models", placeholder: "mock-fast, auto" });
    const rpm = h("input", { id: "key-rpm", type: "number", min: 1 });
    const tpm = h("input", { id: "key-tpm", type: "number", min: 1 });
    const tier = h("input", { id: "key-tier", placeholder: "cheap" });
    const expires = h("input", { id: "key-expires", type: "date" });
    const load = async () => {
      const keys = await api("/api/keys");
      list.replaceChildren(table([
        { key: "name", label: t("keys.name") },
        { key: "prefix", label: t("keys.prefix"), fmt: (v, r) => v || r.key_prefix || r.id },
        { key: "allowed_models", label: t("keys.models"), fmt: (v) => (v && v.length ? v.join(", ") : t("keys.all_models")) },
        { key: "rpm_limit", label: "RPM", num: true }, { key: "tpm_limit", label: "TPM", num: true },
        { key: "max_route_tier", label: t("keys.tier") },
        { key: "created_at", label: t("keys.created"), fmt: when },
        { key: "revoked_at", label: t("keys.state"), fmt: (v, r) => (v || r.revoked ? h("span", { class: "badge bad", text: t("keys.revoked") }) : h("span", { class: "badge ok", text: t("keys.active") })) },
        { key: "id", label: t("actions"), fmt: (id, r) => (r.revoked_at || r.revoked ? "" : h("button", { type: "button", class: "danger", "aria-label": t("keys.revoke") + " " + r.name, text: t("keys.revoke"), onclick: async () => {
          if (!confirm(t("keys.confirm_revoke", { name: r.name }))) return;
          try { await api(`/api/keys/${encodeURIComponent(id)}`, { method: "DELETE" }); toast(t("keys.revoked")); await load(); }
          catch (err) { status.replaceChildren(errorBox(err)); }
        } })) },
      ], keys.data));
    };
    const form = h("form", { class: "grid", onsubmit: async (e) => {
      e.preventDefault();
      const body = { name: name.value.trim() };
      const allowed = models.value.split(",").map((s) => s.trim()).filter(Boolean);
      if (allowed.length) body.allowed_models = allowed;
      if (rpm.value) body.rpm_limit = Number(rpm.value);
      if (tpm.value) body.tpm_limit = Number(tpm.value);
      if (tier.value.trim()) body.max_route_tier = tier.value.trim();
      if (expires.value) body.expires_at = new Date(expires.value + "T23:59:59Z").toISOString();
      try {
        const created = await api("/api/keys", { method: "POST", json: body });
        const code = h("code", { id: "new-secret", text: created.key });
        status.replaceChildren(h("div", { class: "secret", role: "alert" },
          h("strong", { text: t("keys.secret_once") }), h("br"), code, " ",
          h("button", { type: "button", id: "copy-secret", text: t("keys.copy"), onclick: async () => {
            try { await navigator.clipboard.writeText(created.key); toast(t("keys.copied")); }
            catch { const r = document.createRange(); r.selectNodeContents(code); getSelection().removeAllRanges(); getSelection().addRange(r); toast(t("keys.select_copy")); }
          } })));
        form.reset();
        await load();
      } catch (err) { status.replaceChildren(errorBox(err)); }
    } },
    field(t("keys.name"), name), field(t("keys.models_hint"), models), field(t("keys.rpm"), rpm), field(t("keys.tpm"), tpm),
    field(t("keys.tier"), tier), field(t("keys.expires"), expires), h("button", { type: "submit", id: "create-key", text: t("keys.create") }));
    main.append(h("h2", { text: t("keys.new") }), form, status, h("h2", { text: t("keys.yours") }), list);
    await load();
  },
};
