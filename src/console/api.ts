import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { KeyService } from "../gen/keyward/admin/v1/admin_pb.js";

/** The admin API's generated client: the console can only call what the proto defines. */
export type KeyClient = Client<typeof KeyService>;

/** A KeyService client on this origin (Connect JSON), presenting `token` on every call. */
export function keyClient(token: string): KeyClient {
  return createClient(
    KeyService,
    createConnectTransport({
      baseUrl: location.origin,
      interceptors: [
        (next) => (request) => {
          request.header.set("authorization", `Bearer ${token}`);
          return next(request);
        },
      ],
    }),
  );
}

/** An API refusal as the console shows it. */
export interface Refusal {
  readonly message: string;
  /** The credential itself was refused (expired, revoked, unknown): the session is over. */
  readonly endsSession: boolean;
}

/** Turns any failure of a call into a sentence a person can act on. */
export function describeError(error: unknown): Refusal {
  const e = ConnectError.from(error);
  const raw = e.rawMessage;
  switch (e.code) {
    case Code.Unauthenticated:
      return {
        endsSession: true,
        message: /^token_expired\b/.test(raw)
          ? "Your sign-in has expired. Sign in again to continue."
          : `keyward did not accept this token (${raw}). Sign in again.`,
      };
    case Code.PermissionDenied:
      return { endsSession: false, message: `Not allowed: ${raw}.` };
    case Code.NotFound:
      return {
        endsSession: false,
        message: `Not found: ${raw}. It may not exist, or it is not yours to manage.`,
      };
    case Code.InvalidArgument:
      return { endsSession: false, message: `Not accepted: ${raw}.` };
    case Code.FailedPrecondition:
    case Code.AlreadyExists:
    case Code.Aborted:
      return { endsSession: false, message: `Refused: ${raw}.` };
    case Code.ResourceExhausted:
      return { endsSession: false, message: `Too large or too many: ${raw}.` };
    case Code.Unavailable:
      return {
        endsSession: false,
        message: `keyward cannot answer right now (${raw}). Try again in a moment.`,
      };
    case Code.Unimplemented:
      return { endsSession: false, message: "This keyward does not offer that action yet." };
    case Code.Unknown:
    case Code.Canceled:
    case Code.DeadlineExceeded:
      return {
        endsSession: false,
        message: "The admin API cannot be reached. Check the connection and try again.",
      };
    default:
      return {
        endsSession: false,
        message: "keyward could not complete this (internal error); its log has the details.",
      };
  }
}
