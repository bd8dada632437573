import { DASHBOARD_HTML } from './dashboard-page';
import { DASHBOARD_SCRIPT } from './dashboard-script';
import { DASHBOARD_CSS } from './dashboard-style';

/**
 * The customer usage page served by `usageRouter({ dashboard: true })`: HTML, script and style,
 * self-contained (no CDN, no fonts, no build step), allowed by {@link DASHBOARD_CSP}. The page
 * loads without a key; its script asks for one and sends it only with its own data calls.
 */

/** Only this origin's script, style and data calls; no inline code, no forms, no framing. */
export const DASHBOARD_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export interface DashboardAssets {
  html: string;
  script: string;
  css: string;
}

export function dashboardAssets(): DashboardAssets {
  return { html: DASHBOARD_HTML, script: DASHBOARD_SCRIPT, css: DASHBOARD_CSS };
}
