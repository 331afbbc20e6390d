/** What the key list is narrowed to; "" leaves a field out. */
export interface Filters {
  readonly kind: string;
  readonly status: string;
  readonly owner: string;
  readonly run: string;
  readonly tenant: string;
}
export const NO_FILTERS: Filters = { kind: "", status: "", owner: "", run: "", tenant: "" };

/** Options for {@link FilterForm}. */
export interface FilterFormProps {
  /** keys:admin may filter by tenant; everyone else sees their own tenant only. */
  readonly managesAll: boolean;
  readonly onApply: (filters: Filters) => void;
}

/** The filter row above the key list; submitting it starts again at page 1. */
export function FilterForm({ managesAll, onApply }: FilterFormProps) {
  const submit = (event: Event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    const value = (name: string) => String(form.get(name) ?? "").trim();
    onApply({
      kind: value("kind"),
      status: value("status"),
      owner: value("owner"),
      run: value("run"),
      tenant: value("tenant"),
    });
  };
  return (
    <form class="filters" onSubmit={submit} aria-label="Filter keys">
      <label>
        Kind
        <select name="kind">
          <option value="">any</option>
          {["live", "user", "agent", "worker"].map((kind) => (
            <option key={kind}>{kind}</option>
          ))}
        </select>
      </label>
      <label>
        Status
        <select name="status">
          <option value="">any</option>
          {["active", "suspended", "revoked", "expired"].map((status) => (
            <option key={status}>{status}</option>
          ))}
        </select>
      </label>
      <label>
        Owner
        <input name="owner" autoComplete="off" />
      </label>
      <label>
        Run
        <input name="run" autoComplete="off" />
      </label>
      {managesAll && (
        <label>
          Tenant
          <input name="tenant" autoComplete="off" />
        </label>
      )}
      <button type="submit">Filter</button>
    </form>
  );
}
