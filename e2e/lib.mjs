// Harness for the browser scenarios: browser launch, page checks (axe-core, screenshots, CSP
// reports), field-error assertions, database counts, mail and cron helpers. Started by run.sh,
// which passes everything through E2E_* variables.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`e2e: ${name} is not set (start the tests with e2e/run.sh)`);
  return v;
}

export const env = {
  port: need('E2E_ROUTER_PORT'),
  workersPort: need('E2E_WORKERS_PORT'),
  stripePort: need('E2E_STRIPE_PORT'),
  pgPort: need('E2E_PG_PORT'),
  pgPassword: need('E2E_PG_PASSWORD'),
  cronSecret: need('E2E_CRON_SECRET'),
  adminEmail: need('E2E_ADMIN_EMAIL'),
  adminPassword: need('E2E_ADMIN_PASSWORD'),
  staffEmail: need('E2E_STAFF_EMAIL'),
  staffPassword: need('E2E_STAFF_PASSWORD'),
  mailDir: need('E2E_MAIL_DIR'),
  out: need('E2E_OUT'),
};

export const url = {
  apex: `http://platform.localhost:${env.port}`,
  admin: `http://admin.platform.localhost:${env.port}`,
  tenant: `http://grace.platform.localhost:${env.port}`,
  custom: `http://grace-church.localhost:${env.port}`,
};

const shots = join(env.out, 'screenshots');
mkdirSync(shots, { recursive: true });

export const DESKTOP = { width: 1280, height: 800 };
export const MOBILE = { width: 390, height: 844 };

// ---------- assertions ----------

export class Failure extends Error {}

export function ok(cond, message) {
  if (!cond) throw new Failure(message);
}

export function eq(actual, expected, what) {
  if (actual !== expected) {
    throw new Failure(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

export async function poll(what, fn, { timeoutMs = 20000, everyMs = 250 } = {}) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > end) throw new Failure(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

// ---------- browser ----------

export async function launch() {
  return chromium.launch({
    executablePath: process.env.E2E_CHROMIUM || '/usr/bin/chromium',
    headless: process.env.E2E_HEADED !== '1',
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

// A page whose console errors, uncaught exceptions and CSP refusals are collected; `problems`
// fails the scenario at its end.
export async function newPage(browser) {
  const context = await browser.newContext({ viewport: DESKTOP, acceptDownloads: true });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.problems = [];
  page.on('console', (msg) => {
    const text = msg.text();
    if (/Content Security Policy|Refused to (load|execute|connect|apply|frame)/i.test(text)) {
      page.problems.push(`CSP: ${text}`);
    } else if (msg.type() === 'error' && !/status of (4\d\d)/.test(text)) {
      // 4xx answers are expected in the bad-input scenarios (422, 401); others are not.
      page.problems.push(`console error: ${text}`);
    }
  });
  page.on('pageerror', (err) => page.problems.push(`page error: ${err.message}`));
  return page;
}

const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
export const axeReport = [];

// Runs axe-core on the page as it is now (injected through evaluate: the pages' CSP blocks
// added script tags) and fails on serious or critical violations. The card element mounted by
// the Stripe emulator's fake Stripe.js is not ours (real Stripe puts an iframe there) and is
// left out.
export async function axeCheck(page, name) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run({ exclude: [['#card-element']] }, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({
      id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ')),
    }));
  });
  axeReport.push({ page: name, url: page.url(), violations: result });
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  if (bad.length) {
    throw new Failure(`axe-core on ${name} (${page.url()}): ${bad
      .map((v) => `${v.impact} ${v.id} (${v.help}) at ${v.nodes.join(', ')}`).join('; ')}`);
  }
}

// Page weight: the document plus the same-origin stylesheets and scripts it loaded (ours; the
// Stripe.js the give page loads comes from Stripe's origin and is not counted), uncompressed,
// from the browser's own resource timing. Issue 20's budget is 100 KB per page.
export const WEIGHT_BUDGET = 100 * 1024;
export const weights = [];
export async function pageWeight(page, name) {
  const w = await page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const ours = performance.getEntriesByType('resource').filter((r) =>
      new URL(r.name).origin === location.origin && ['link', 'script', 'css'].includes(r.initiatorType));
    return {
      html: nav ? nav.decodedBodySize : 0,
      assets: ours.map((r) => ({ url: new URL(r.name).pathname, bytes: r.decodedBodySize })),
    };
  });
  const total = w.html + w.assets.reduce((n, a) => n + a.bytes, 0);
  weights.push({ page: name, url: page.url(), total, ...w });
  if (!(w.html > 0)) throw new Failure(`page weight of ${name}: the document's size is unknown`);
  if (total > WEIGHT_BUDGET) {
    throw new Failure(`page weight of ${name}: ${total} bytes (HTML ${w.html} + ${w.assets
      .map((a) => `${a.url} ${a.bytes}`).join(', ')}) is over ${WEIGHT_BUDGET}`);
  }
}

// Screenshots at desktop and mobile width, page weight, then axe-core. Every main page goes
// through this.
export async function checkPage(page, name) {
  await page.waitForLoadState('load');
  await pageWeight(page, name);
  await page.screenshot({ path: join(shots, `${name}-desktop.png`), fullPage: true });
  await page.setViewportSize(MOBILE);
  await page.screenshot({ path: join(shots, `${name}-mobile.png`), fullPage: true });
  await page.setViewportSize(DESKTOP);
  await axeCheck(page, name);
}

export function pathOf(page) {
  return new URL(page.url()).pathname;
}

// Submits a form by clicking `button` (scripts such as give.js may run first) and returns the
// HTTP status of the form's POST (a 303 shows as 303) once the next page has loaded.
export async function submit(page, button, path) {
  const answered = page.waitForResponse((r) => r.request().method() === 'POST'
    && r.request().isNavigationRequest() && r.frame() === page.mainFrame()
    && (!path || new URL(r.url()).pathname === path), { timeout: 20000 });
  const loaded = page.waitForEvent('load', { timeout: 20000 });
  await button.click();
  const resp = await answered;
  await loaded;
  return resp.status();
}

// The message shown next to a field after a refused submission: the input (by name, inside
// `formSel`) must carry aria-invalid="true", and an element with class field-error must be
// beside it (in its wrapper, two levels up at most, or linked by aria-describedby) with text.
export async function fieldError(page, formSel, name) {
  const found = await page.evaluate(([formSel, name]) => {
    const form = document.querySelector(formSel);
    if (!form) return { error: `no form ${formSel}` };
    const input = form.querySelector(`[name="${name}"]:not([type=hidden])`);
    if (!input) return { error: `no field ${name} in ${formSel}` };
    const invalid = input.getAttribute('aria-invalid');
    const described = (input.getAttribute('aria-describedby') || '').split(/\s+/)
      .map((id) => id && document.getElementById(id)).filter(Boolean);
    let el = described.find((d) => d.classList.contains('field-error'));
    for (let box = input.parentElement, i = 0; !el && box && i < 3; box = box.parentElement, i++) {
      const errs = [...box.querySelectorAll('.field-error')];
      // A wrapper holding several fields' errors is too far up to count as "next to" this one.
      if (errs.length === 1) el = errs[0];
      if (errs.length > 1) break;
    }
    return { invalid, text: el ? el.textContent.trim() : null };
  }, [formSel, name]);
  if (found.error) throw new Failure(found.error);
  ok(found.text, `no .field-error next to ${name} in ${formSel}`);
  eq(found.invalid, 'true', `aria-invalid on ${name} in ${formSel}`);
  return found.text;
}

// ---------- database, cron, mail ----------

export function sql(query) {
  return execFileSync('psql', ['-X', '-qtA', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1',
    '-p', env.pgPort, '-U', 'postgres', '-d', 'platform', '-c', query], {
    env: { ...process.env, PGPASSWORD: env.pgPassword, PGOPTIONS: '-c client_min_messages=warning' },
    encoding: 'utf8',
  }).trim();
}

export const WRITE_TABLES = ['tenants', 'tenant_domains', 'donors', 'donations',
  'recurring_donations', 'email_outbox', 'tenant_users', 'admin_users'];

// Waits until the Stripe emulator has relayed no webhook for 1.5 s (localstripe sends each a
// second after the change), so a late event of an earlier scenario cannot pass for a write.
export async function quiet() {
  const relayed = async () => (await (await fetch(`http://127.0.0.1:${env.stripePort}/_relay/log`)).json()).length;
  let last = await relayed();
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setTimeout(r, 1500));
    const now = await relayed();
    if (now === last) return;
    last = now;
  }
}

export function counts() {
  const q = WRITE_TABLES.map((t) => `(SELECT count(*) FROM ${t})`).join(" || ',' || ");
  const values = sql(`SELECT ${q}`).split(',');
  return Object.fromEntries(WRITE_TABLES.map((t, i) => [t, Number(values[i])]));
}

export function sameCounts(before, what) {
  const after = counts();
  const changed = WRITE_TABLES.filter((t) => before[t] !== after[t]);
  ok(!changed.length, `${what} wrote rows: ${changed
    .map((t) => `${t} ${before[t]} -> ${after[t]}`).join(', ')}`);
}

export async function runCron(job) {
  const r = await fetch(`http://127.0.0.1:${env.workersPort}/api/cron/${job}`, {
    method: 'POST', headers: { authorization: `Bearer ${env.cronSecret}` },
  });
  ok(r.ok, `cron ${job} answered ${r.status}: ${await r.text()}`);
}

// Messages in the SMTP sink's Maildir, decoded by Python's email package (quoted-printable,
// base64, multipart): [{file, to, subject, text}].
export function mails() {
  const files = readdirSync(env.mailDir).map((f) => join(env.mailDir, f));
  if (!files.length) return [];
  const script = `
import email, email.policy, json, sys
out = []
for path in sys.argv[1:]:
    with open(path, 'rb') as f:
        m = email.message_from_binary_file(f, policy=email.policy.default)
    parts = [p.get_content() for p in m.walk() if p.get_content_maintype() == 'text']
    out.append({'file': path, 'to': str(m['to']), 'subject': str(m['subject']), 'text': '\\n'.join(parts)})
print(json.dumps(out))`;
  return JSON.parse(execFileSync('python3', ['-c', script, ...files], { encoding: 'utf8' }));
}

// Waits for a mail to `to`, running the mail job so the test need not wait for its schedule.
export async function mailTo(to, { timeoutMs = 30000 } = {}) {
  return poll(`a mail to ${to} in ${env.mailDir}`, async () => {
    const found = mails().find((m) => m.to.includes(to));
    if (found) return found;
    await runCron('process-emails');
    return mails().find((m) => m.to.includes(to));
  }, { timeoutMs, everyMs: 1000 });
}

export function writeReport(results) {
  writeFileSync(join(env.out, 'axe.json'), JSON.stringify(axeReport, null, 2));
  writeFileSync(join(env.out, 'page-weight.json'), JSON.stringify(weights, null, 2));
  if (weights.length) {
    const line = (w) => `${w.page.padEnd(26)} ${String(w.total).padStart(7)} B  (HTML ${w.html}, ${w.assets.length} asset(s))`;
    console.log(`page weight (budget ${WEIGHT_BUDGET} B):\n${weights.map(line).join('\n')}`);
  }
  writeFileSync(join(env.out, 'results.json'), JSON.stringify(results, null, 2));
}

export { shots };
