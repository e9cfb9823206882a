// Seed baseline: 30 s warm-up at 50 RPS, then 2 min at 150 RPS of POST /infer/python.
import { envString } from './lib/common.js';
import { steadyProfile } from './lib/steady.js';

const profile = steadyProfile('baseline', {
  rate: 150, duration: envString('DURATION', '2m'), p95: 200, p99: 400,
});

export const options = profile.options;
export default profile.run;
export const handleSummary = profile.handleSummary;
