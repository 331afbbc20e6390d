import type { ComponentChildren } from "preact";
import { useLayoutEffect, useRef } from "preact/hooks";

/** Options for {@link Dialog}. */
export interface DialogProps {
  /** Heading; also the dialog's accessible name. */
  readonly title: string;
  /** Called when the dialog closes by Escape, a Cancel button or the caller. */
  readonly onClose: () => void;
  readonly children: ComponentChildren;
  readonly wide?: boolean;
}

let dialogs = 0;

/**
 * A modal dialog on the native <dialog> element: the browser traps focus
 * inside it, closes it on Escape and makes the page behind it inert. Focus
 * returns to the control that opened it.
 */
export function Dialog({ title, onClose, children, wide }: DialogProps) {
  const ref = useRef<HTMLDialogElement>(null);
  const id = useRef(`dialog-${++dialogs}`).current;
  useLayoutEffect(() => {
    const opener = document.activeElement as HTMLElement | null;
    const dialog = ref.current;
    dialog?.showModal();
    return () => {
      // Closed first: while a modal dialog is open, everything outside it is inert.
      dialog?.close();
      opener?.focus();
    };
  }, []);
  return (
    <dialog
      ref={ref}
      class={wide ? "dialog wide" : "dialog"}
      aria-labelledby={id}
      onCancel={(event) => {
        event.preventDefault();
        onClose();
      }}
    >
      <h2 id={id}>{title}</h2>
      {children}
    </dialog>
  );
}

/** Options for {@link Confirm}. */
export interface ConfirmProps {
  readonly title: string;
  readonly children: ComponentChildren;
  /** The confirming button's text, e.g. "Revoke key". */
  readonly action: string;
  readonly danger?: boolean;
  readonly busy: boolean;
  /** A refusal of the confirmed call, shown inside the dialog. */
  readonly error: string | undefined;
  readonly onConfirm: () => void;
  readonly onClose: () => void;
}

/** Asks before an action that cannot be taken back. */
export function Confirm(props: ConfirmProps) {
  return (
    <Dialog title={props.title} onClose={props.onClose}>
      {props.children}
      <ErrorText text={props.error} />
      <div class="buttons">
        <button type="button" onClick={props.onClose}>
          Cancel
        </button>
        <button
          type="button"
          class={props.danger ? "danger" : "primary"}
          disabled={props.busy}
          onClick={props.onConfirm}
        >
          {props.action}
        </button>
      </div>
    </Dialog>
  );
}

/** A refusal, announced to screen readers when it appears. Reserves no space when empty. */
export function ErrorText({ text }: { readonly text: string | undefined }) {
  return (
    <p class="error" role="alert" hidden={!text}>
      {text}
    </p>
  );
}
