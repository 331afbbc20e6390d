import { render } from "preact";
import { App } from "./app.js";
import { type ConsoleClient, finishSignIn, type Session, SignInError } from "./auth.js";

/** The issuers this keyward offers for sign-in (public client facts only). */
async function loadClients(): Promise<ConsoleClient[]> {
  try {
    const response = await fetch("/console/config.json", { cache: "no-store" });
    const body = (await response.json()) as { issuers?: ConsoleClient[] };
    return body.issuers ?? [];
  } catch {
    return [];
  }
}

const clients = await loadClients();
let initial: Session | undefined;
let message: string | undefined;
try {
  initial = await finishSignIn(clients);
} catch (error) {
  message =
    error instanceof SignInError ? error.message : "The sign-in could not be completed. Try again.";
}
const root = document.getElementById("app");
if (root) render(<App clients={clients} initial={initial} message={message} />, root);
