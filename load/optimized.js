// Optimized target: 30 s warm-up at 50 RPS, then 2 min at 200 RPS of POST /infer/python.
import { envString } from './lib/common.js';
import { steadyProfile } from './lib/steady.js';

const profile = steadyProfile('optimized', {
  rate: 200, duration: envString('DURATION', '2m'), p95: 140, p99: 280,
});

export const options = profile.options;
export default profile.run;
export const handleSummary = profile.handleSummary;
