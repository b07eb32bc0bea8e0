// caddy.mjs: headless Chromium through a real Caddy (forward_auth to cognito-authz's HTTP protocol) to an
// upstream that echoes what it receives. The app is on localhost, the dev issuer on 127.0.0.1: cross-site.
// Usage: node caddy.mjs <app base URL> <session cookie name>. Prints one JSON object of what each step saw.
import { createRequire } from 'node:module';
const require = createRequire(process.env.PLAYWRIGHT_DIR + '/node_modules/');
const { chromium } = require('playwright-core');

const [app, cookieName] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const out = {};
const session = async (context) => ((await context.cookies()).find((c) => c.name === cookieName) || {}).value || '';
const isLoginForm = async (page) => (await page.locator('input[name="username"]').count()) === 1;
const signIn = async (page, url) => {
  await page.fill('input[name="username"]', 'ivy');
  await page.fill('input[name="password"]', 'pw');
  await page.fill('input[name="groups"]', 'admins');
  await Promise.all([page.waitForURL(url), page.click('button[type="submit"]')]);
};
const echo = async (page) => JSON.parse(await page.locator('body').innerText());
try {
  const context = await browser.newContext();
  await context.addCookies([{ name: 'theme', value: 'dark', url: app }]);
  const page = await context.newPage();
  // 1. navigate to a protected page: the Hosted UI's form; sign in; back at the original URL.
  await page.goto(app + '/page?x=1&y=two');
  out.loginForm = await isLoginForm(page);
  await signIn(page, app + '/page?x=1&y=two');
  out.afterSignIn = { url: page.url(), echo: await echo(page) };
  // 2. fetch() without a session (a fresh context): 401 JSON naming the login URL.
  const anonContext = await browser.newContext();
  await anonContext.addCookies([{ name: 'theme', value: 'dark', url: app }]);
  const anon = await anonContext.newPage();
  await anon.goto(app + '/public');
  out.fetchAnonymous = await anon.evaluate(async () => {
    const r = await fetch('/page?z=3');
    return { status: r.status, body: await r.json() };
  });
  // 3. refresh: the token lifetime is inside refresh_before, so the next visit refreshes inline: a new
  // session cookie on the allow, and the page, not the sign-in form.
  const before = await session(context);
  await page.goto(app + '/page?again=1');
  out.refresh = { changed: before !== '' && before !== (await session(context)), loginForm: await isLoginForm(page),
    url: page.url() };
  // 4. logout by a same-origin POST: through Cognito's /logout back to the app; the next visit signs in.
  await page.evaluate(() => {
    const f = document.createElement('form');
    f.method = 'POST'; f.action = '/_authz/logout'; document.body.append(f); f.submit();
  });
  await page.waitForURL(app + '/public');
  out.sessionAfterLogout = await session(context);
  await page.goto(app + '/page?after=logout');
  out.loginFormAfterLogout = await isLoginForm(page);
  // 5. sign in again, then tamper with the session cookie: signed out (the sign-in form again).
  await signIn(page, app + '/page?after=logout');
  const v = await session(context);
  const flipped = v.slice(0, 20) + (v[20] === 'A' ? 'B' : 'A') + v.slice(21);
  await context.addCookies([{ name: cookieName, value: flipped, url: app, httpOnly: true, sameSite: 'Lax' }]);
  await page.goto(app + '/page?tampered=1');
  out.loginFormAfterTamper = await isLoginForm(page);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
