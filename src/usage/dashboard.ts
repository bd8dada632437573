/**
 * The customer usage page served by `usageRouter({ dashboard: true })`: HTML, script and style,
 * self-contained (no CDN, no fonts), allowed by {@link DASHBOARD_CSP}.
 * PLACEHOLDER: the page itself is being written.
 */
export const DASHBOARD_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export interface DashboardAssets {
  html: string;
  script: string;
  css: string;
}

export function dashboardAssets(): DashboardAssets {
  return {
    html: '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>API usage</title><link rel="stylesheet" href="dashboard.css"></head><body><main id="app"></main><script src="dashboard.js"></script></body></html>',
    script: '',
    css: '',
  };
}
