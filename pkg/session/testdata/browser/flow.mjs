// flow.mjs: headless Chromium through the whole browser flow against an app that serves pkg/session
// (the app on localhost, the dev issuer on 127.0.0.1: cross-site, as in production).
// Usage: node flow.mjs <app base URL>. Prints one JSON object with what each step saw.
import { createRequire } from 'node:module';
const require = createRequire(process.env.PLAYWRIGHT_DIR + '/node_modules/');
const { chromium } = require('playwright-core');

const app = process.argv[2];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const out = {};
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  // 1. navigate to a protected page: sent to the login form, sign in, back at the original URL.
  await page.goto(app + '/page?x=1');
  out.loginForm = await page.locator('input[name="username"]').count() === 1;
  await page.fill('input[name="username"]', 'ivy');
  await page.fill('input[name="password"]', 'pw');
  await page.fill('input[name="groups"]', 'admins');
  await Promise.all([page.waitForURL(app + '/page?x=1'), page.click('button[type="submit"]')]);
  out.afterSignIn = { url: page.url(), body: await page.locator('body').innerText() };
  out.cookies = (await context.cookies()).map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite }));
  // 2. fetch() with the session: allowed.
  out.fetchSignedIn = await page.evaluate(async () => (await fetch('/page')).status);
  // 3. fetch() from a fresh context without a session: 401 JSON naming the login URL.
  const anon = await (await browser.newContext()).newPage();
  await anon.goto(app + '/public');
  out.fetchAnonymous = await anon.evaluate(async () => { const r = await fetch('/page?y=2'); return { status: r.status, body: await r.json() }; });
  // 4. logout by a same-origin POST: through Cognito's /logout back to the app, then signed out.
  await page.evaluate(() => { const f = document.createElement('form'); f.method = 'POST'; f.action = '/_authz/logout'; document.body.append(f); f.submit(); });
  await page.waitForURL(app + '/public');
  out.cookiesAfterLogout = (await context.cookies()).map((c) => c.name);
  await page.goto(app + '/page');
  out.loginFormAfterLogout = await page.locator('input[name="username"]').count() === 1;
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
