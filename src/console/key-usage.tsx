import { useEffect, useState } from "preact/hooks";
import type { KeyUsageHour } from "../gen/keyward/admin/v1/admin_pb.js";
import { describeError, type KeyClient } from "./api.js";
import { ErrorText } from "./dialog.js";
import { formatTime, isoTime } from "./format.js";

/** Options for {@link KeyUsage}. */
export interface KeyUsageProps {
  readonly client: KeyClient;
  readonly keyId: string;
  readonly onSessionEnded: (message: string) => void;
}

/** How far back the console looks: one day, hour by hour. */
const HOURS = 24;

/**
 * A key's use anywhere in the fleet over the last day (GetKeyUsage): the
 * totals, then each hour it was used, with its denials by code.
 */
export function KeyUsage({ client, keyId, onSessionEnded }: KeyUsageProps) {
  const [hours, setHours] = useState<KeyUsageHour[]>();
  const [error, setError] = useState<string>();
  useEffect(() => {
    client.getKeyUsage({ id: keyId, hours: HOURS }).then(
      (answer) => setHours(answer.usage),
      (failure: unknown) => {
        const refusal = describeError(failure);
        if (refusal.endsSession) onSessionEnded(refusal.message);
        else setError(refusal.message);
      },
    );
  }, [keyId]);

  const allowed = hours?.reduce((sum, hour) => sum + Number(hour.allowed), 0) ?? 0;
  const denied = hours?.reduce((sum, hour) => sum + deniedIn(hour), 0) ?? 0;
  return (
    <section aria-labelledby="usage-heading">
      <h3 id="usage-heading">Usage, last {HOURS} hours</h3>
      <p role="status">
        {hours === undefined
          ? error
            ? ""
            : "Loading usage…"
          : `${allowed} allowed · ${denied} denied`}
      </p>
      {hours !== undefined && hours.length > 0 && (
        <div class="table-wrap">
          <table class="audit" aria-labelledby="usage-heading">
            <thead>
              <tr>
                <th scope="col">Hour</th>
                <th scope="col">Allowed</th>
                <th scope="col">Denied</th>
              </tr>
            </thead>
            <tbody>
              {[...hours].reverse().map((hour) => (
                <tr key={isoTime(hour.hour)}>
                  <td>
                    <time dateTime={isoTime(hour.hour)}>{formatTime(hour.hour)}</time>
                  </td>
                  <td>{String(hour.allowed)}</td>
                  <td class="mono wrap">
                    {Object.entries(hour.denied)
                      .map(([code, count]) => `${code} ${count}`)
                      .join(", ") || "0"}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <ErrorText text={error} />
    </section>
  );
}

function deniedIn(hour: KeyUsageHour): number {
  return Object.values(hour.denied).reduce((sum, count) => sum + Number(count), 0);
}
