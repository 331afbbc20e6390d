// Number formats shared by the two halves of RESULTS.md.

export const ms = (us) => (us / 1000).toFixed(2);
export const pct = (x) => `${(x * 100).toFixed(1)} %`;
export const num = (x) => Math.round(x).toLocaleString("en-US");
export const lat = (s) => `${ms(s.p50)} / ${ms(s.p99)} / ${ms(s.p999)}`;
export const verdict = (met) => (met ? "met" : "**MISSED**");
export const cpuCell = (s) =>
  `${s.baseline.cpuUs.toFixed(0)} / ${s.keyward.cpuUs.toFixed(0)} (${pct(s.cpuRatio)})`;
