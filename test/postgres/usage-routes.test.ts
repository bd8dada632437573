import { usageRouteCases } from '../usage/usage-routes.cases';
import { databaseForFile } from './harness';

const file = databaseForFile();
let schema = 0;

describe('usage routes on PostgreSQL: keys, windows, quota and credits', () => {
  usageRouteCases(() => ({ databaseUrl: file.db.url, keyStore: 'postgres', databaseSchema: `usage_routes_${++schema}` }));
});
