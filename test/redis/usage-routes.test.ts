import { usageRouteCases } from '../usage/usage-routes.cases';
import { redisForFile } from './harness';

const testRedis = redisForFile();
let namespace = 0;

describe('usage routes on Redis: keys, windows, quota and credits', () => {
  usageRouteCases(() => ({ redis: testRedis.server.url, keyStore: 'redis', redisPrefix: `usage-routes-${++namespace}` }));
});
