import { useState } from "preact/hooks";
import type { Key } from "../gen/keyward/admin/v1/admin_pb.js";
import { Confirm } from "./dialog.js";
import { keyLabel } from "./format.js";

/** Options for {@link RotateDialog}. */
export interface RotateDialogProps {
  readonly key_: Key;
  readonly busy: boolean;
  readonly error: string | undefined;
  readonly onClose: () => void;
  readonly onRotate: (graceSeconds: number) => void;
}

/**
 * How long the previous secret may keep working, so clients can switch
 * without failing requests (RotateKey `graceSeconds`; the server caps it).
 */
const GRACES: readonly { readonly label: string; readonly seconds: number }[] = [
  { label: "stops at once", seconds: 0 },
  { label: "works for 1 hour", seconds: 3_600 },
  { label: "works for 1 day", seconds: 86_400 },
  { label: "works for 7 days", seconds: 7 * 86_400 },
];

/** Confirms a rotation, with the grace period of the current secret. */
export function RotateDialog({ key_, busy, error, onClose, onRotate }: RotateDialogProps) {
  const [grace, setGrace] = useState(0);
  return (
    <Confirm
      title={`Rotate “${keyLabel(key_)}”?`}
      action="Rotate key"
      busy={busy}
      error={error}
      onClose={onClose}
      onConfirm={() => onRotate(grace)}
    >
      <p>
        Key <strong>{keyLabel(key_)}</strong> (<span class="mono">{key_.keyLookup}</span>) gets a
        new secret, shown once.
      </p>
      <div class="form">
        <label for="rotate-grace">The current secret</label>
        <select
          id="rotate-grace"
          name="grace"
          value={String(grace)}
          onChange={(event) => setGrace(Number(event.currentTarget.value))}
        >
          {GRACES.map((option) => (
            <option key={option.seconds} value={String(option.seconds)}>
              {option.label}
            </option>
          ))}
        </select>
      </div>
    </Confirm>
  );
}
