// Soak: 30 s warm-up, then SOAK_DURATION (default 10m) at 100 RPS of POST /infer/python.
import { envString } from './lib/common.js';
import { steadyProfile } from './lib/steady.js';

const profile = steadyProfile('soak', {
  rate: 100, duration: envString('SOAK_DURATION', envString('DURATION', '10m')), p95: 200, p99: 400,
});

export const options = profile.options;
export default profile.run;
export const handleSummary = profile.handleSummary;
