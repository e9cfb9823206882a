// A steady POST /infer/python profile: warm-up stage, then the measured `main` stage.
import { check } from 'k6';
import {
  envNumber, envString, handleSummaryFor, infer, isEchoResult, mainStage, TREND_STATS, warmedUp,
} from './common.js';

export function steadyProfile(name, { rate, duration, p95, p99 }) {
  const { scenarios, profile } = warmedUp({
    warmupRate: envNumber('WARMUP_RATE', 50),
    warmupDuration: envString('WARMUP_DURATION', '30s'),
    rate: envNumber('RATE', rate),
    duration,
  });
  return {
    options: {
      scenarios,
      summaryTrendStats: TREND_STATS,
      thresholds: mainStage({
        http_req_failed: ['rate<0.001'],
        http_req_duration: [`p(95)<${p95}`, `p(99)<${p99}`],
      }),
    },
    run() {
      check(infer('python'), { 'infer/python answers 200 echo': isEchoResult });
    },
    handleSummary: handleSummaryFor(name, profile),
  };
}
