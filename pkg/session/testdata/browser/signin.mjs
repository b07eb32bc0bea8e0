// signin.mjs: headless Chromium (Debian's, never a downloaded browser) signs in on the dev issuer's login
// form. Usage: node signin.mjs <authorize URL> <user> <groups>. Prints the URL the form redirected to.
import { createRequire } from 'node:module';
const require = createRequire(process.env.PLAYWRIGHT_DIR + '/node_modules/');
const { chromium } = require('playwright-core');

const [authorize, user, groups] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});
try {
  const page = await browser.newPage();
  // The callback target is not served: stop at the redirect and report where the form sent us.
  await page.route('**/_authz/callback**', (route) => route.fulfill({ status: 204 }));
  await page.goto(authorize);
  await page.fill('input[name="username"]', user);
  await page.fill('input[name="password"]', 'pw');
  await page.fill('input[name="groups"]', groups);
  const [req] = await Promise.all([page.waitForRequest('**/_authz/callback**'), page.click('button[type="submit"]')]);
  console.log(req.url());
} finally {
  await browser.close();
}
