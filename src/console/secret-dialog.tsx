import { useRef, useState } from "preact/hooks";
import type { Key } from "../gen/keyward/admin/v1/admin_pb.js";
import { Dialog } from "./dialog.js";
import { keyLabel } from "./format.js";

/** Options for {@link SecretDialog}. */
export interface SecretDialogProps {
  readonly key_: Key;
  readonly secret: string;
  /** "created" or "rotated". */
  readonly verb: string;
  readonly onClose: () => void;
}

/**
 * Shows a secret the one time the API returns it. Closing the dialog drops
 * it: the console keeps no copy, and keyward keeps only its hash.
 */
export function SecretDialog({ key_, secret, verb, onClose }: SecretDialogProps) {
  const field = useRef<HTMLInputElement>(null);
  const [copied, setCopied] = useState("");
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(secret);
      setCopied("Copied to the clipboard.");
    } catch {
      // No clipboard permission (or no secure context): select it for Ctrl+C instead.
      field.current?.select();
      setCopied("Selected: press Ctrl+C (or ⌘C) to copy.");
    }
  };
  return (
    <Dialog title={`Key ${verb}: ${keyLabel(key_)}`} onClose={onClose}>
      <p class="warning">
        <strong>Copy the secret now: you will not see this again.</strong> keyward stores only a
        hash of it, so it cannot be shown later; if it is lost, rotate the key.
      </p>
      <label for="secret">Secret</label>
      <div class="copy-row">
        <input
          id="secret"
          ref={field}
          class="mono"
          type="text"
          readOnly
          value={secret}
          autoComplete="off"
          spellcheck={false}
          onFocus={(event) => event.currentTarget.select()}
        />
        <button type="button" onClick={copy}>
          Copy
        </button>
      </div>
      <p class="hint" role="status">
        {copied}
      </p>
      <div class="buttons">
        <button type="button" class="primary" onClick={onClose}>
          Done
        </button>
      </div>
    </Dialog>
  );
}
