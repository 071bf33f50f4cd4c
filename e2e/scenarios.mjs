// The issue-20 scenarios in a real browser (Debian chromium through playwright-core), through
// the router on *.localhost, against the real platform, PostgreSQL, Redis, SMTP sink and Stripe
// emulator. Run by e2e/run.sh; `node e2e/scenarios.mjs [name-substring ...]` picks scenarios.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  Failure, axeCheck, checkPage, counts, quiet, env, eq, fieldError, launch, mailTo, newPage, ok,
  pageWeight, pathOf, poll, sameCounts, shots, sql, submit, url, writeReport,
} from './lib.mjs';

const run = Date.now().toString(36);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
// What the donor scenarios gave, for the staff CSV scenario.
const gifts = [];

// ---------- steps shared by scenarios ----------

async function login(page, base, { email, password }, home) {
  await page.goto(`${base}${home === '/' ? '/login' : '/staff/login'}`);
  await page.getByLabel('Email', { exact: true }).fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  const status = await submit(page, page.getByRole('button', { name: 'Sign in' }));
  ok(status === 303 || status === 200, `sign in answered ${status}`);
  eq(pathOf(page), home, 'page after signing in');
}

const adminLogin = (page) => login(page, url.admin,
  { email: env.adminEmail, password: env.adminPassword }, '/');
const staffLogin = (page) => login(page, url.tenant,
  { email: env.staffEmail, password: env.staffPassword }, '/staff');

async function badLogin(page, base, path, email) {
  await page.goto(`${base}${path}`);
  await page.getByLabel('Email', { exact: true }).fill(email);
  await page.getByLabel('Password', { exact: true }).fill('not-the-password');
  const status = await submit(page, page.getByRole('button', { name: 'Sign in' }), path);
  eq(status, 401, `${path} with a wrong password`);
  const alert = page.getByRole('alert');
  ok(await alert.count() > 0 && (await alert.first().textContent()).trim(),
    `${path}: no role=alert message after a failed sign-in`);
  eq(pathOf(page), path, 'page after a failed sign-in');
}

async function checkRadio(page, locator) {
  try {
    await locator.check({ timeout: 2000 });
  } catch {
    // Presets styled as buttons may hide the input itself: choose it through its label.
    const id = await locator.getAttribute('id');
    if (id && await page.locator(`label[for="${id}"]`).count()) {
      await page.locator(`label[for="${id}"]`).click();
    } else {
      await locator.evaluate((el) => el.click());
    }
  }
  ok(await locator.isChecked(), 'radio could not be chosen');
}

// Fills the donation form. `amount` is a preset in minor units (number) or an "Other amount"
// text in major units (string).
async function fillGive(page, { amount, frequency, name, email, card = true, cardNumber = '4242424242424242' }) {
  const form = page.locator('form#give');
  if (typeof amount === 'number') {
    await checkRadio(page, form.locator(`input[name=preset][value="${amount}"]`));
  } else {
    await page.getByLabel('Other amount').fill(amount);
  }
  const fund = page.getByLabel('Fund', { exact: true });
  const funds = await fund.locator('option').evaluateAll((os) => os.map((o) => o.value));
  await fund.selectOption(funds.includes('missions') ? 'missions' : funds[0]);
  await checkRadio(page, page.getByLabel(frequency === 'month' ? 'Monthly' : 'One time', { exact: true }));
  await page.getByLabel('Your name').fill(name);
  await page.getByLabel('Email', { exact: true }).fill(email);
  if (card) {
    // Stripe.js (here the emulator's fake one, from its own port) mounts the card fields.
    const number = page.locator('#card-element input[placeholder=number]');
    await number.waitFor({ timeout: 10000 });
    await number.fill(cardNumber);
    await page.locator('#card-element input[placeholder=exp_month]').fill('12');
    await page.locator('#card-element input[placeholder=exp_year]').fill('34');
    await page.locator('#card-element input[placeholder=cvc]').fill('123');
    await page.locator('#card-element input[placeholder=postal_code]').fill('12345');
  }
}

async function give(page, gift) {
  await page.goto(`${url.tenant}/`);
  await fillGive(page, gift);
  await Promise.all([
    page.waitForURL(/\/give\/thanks\?/, { timeout: 20000 }),
    page.getByRole('button', { name: 'Give', exact: true }).click(),
  ]);
  const u = new URL(page.url());
  // The page names a one-time gift as ?gift=<donation id>, a monthly one as
  // ?recurring=<recurring gift id>&token=… (the contract had gift=…&kind=…).
  const id = gift.frequency === 'month' ? u.searchParams.get('recurring') : u.searchParams.get('gift');
  ok(UUID.test(id || ''), `thank-you URL names no gift: ${page.url()}`);
  eq((await page.locator('h1').first().textContent()).trim(), 'Thank you', 'thank-you heading');
  return id;
}

// A GET from inside the page (its cookies, and Chromium's own *.localhost resolution, which
// Node's resolver lacks).
async function browserGet(page, href) {
  return page.evaluate(async (href) => {
    const r = await fetch(href, { credentials: 'same-origin' });
    return {
      status: r.status, text: await r.text(), type: r.headers.get('content-type') || '',
      disposition: r.headers.get('content-disposition') || '',
    };
  }, href);
}

// RFC 4180 CSV (quoted fields, doubled quotes, CRLF) into objects keyed by the header.
function parseCsv(text) {
  const records = [];
  let rec = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { rec.push(field); field = ''; }
    else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      rec.push(field); records.push(rec); rec = []; field = '';
    } else field += c;
  }
  if (field || rec.length) { rec.push(field); records.push(rec); }
  const [header, ...body] = records;
  ok(header && header.includes('amount_minor'), `CSV header: ${header}`);
  return body.map((r) => Object.fromEntries(header.map((h, i) => [h, r[i]])));
}

// ---------- scenarios ----------

const scenarios = [];
const scenario = (name, fn) => scenarios.push({ name, fn });

scenario('public pages: apex landing, tenant site by subdomain and custom domain', async (browser) => {
  const page = await newPage(browser);
  await page.goto(`${url.apex}/`);
  ok((await page.locator('h1').count()) > 0, 'apex landing page has no h1');
  await checkPage(page, 'apex-landing');
  await page.goto(`${url.custom}/`);
  eq((await page.locator('h1').first().textContent()).trim(), 'Grace Community Church', 'custom-domain h1');
  await axeCheck(page, 'tenant-give-custom-domain');
  return page;
});

scenario('donor: one-time gift, thank-you page, receipt in the SMTP sink', async (browser) => {
  const page = await newPage(browser);
  await page.goto(`${url.tenant}/`);
  eq((await page.locator('h1').first().textContent()).trim(), 'Grace Community Church', 'tenant h1');
  await page.locator('#card-element input').first().waitFor({ timeout: 10000 });
  ok(await page.locator('#fee-note').count() > 0, 'no #fee-note on the donation form');
  await checkPage(page, 'tenant-give');
  const email = `once-${run}@example.org`;
  const id = await give(page, { amount: 2500, frequency: 'one_time', name: 'Ann Once', email });
  await checkPage(page, 'tenant-thanks');
  // The emulator's webhook (relayed with the connected account) settles the gift.
  await poll('the one-time gift to succeed', () =>
    sql(`SELECT status FROM donations WHERE id = '${id}'`) === 'succeeded');
  eq(sql(`SELECT amount_minor FROM donations WHERE id = '${id}'`), '2500', 'stored amount');
  const mail = await mailTo(email);
  ok(/25\.00/.test(mail.text), `receipt does not show 25.00: ${mail.text.slice(0, 400)}`);
  gifts.push({ id, email, amount: 2500, kind: 'one_time' });
  return page;
});

scenario('donor: monthly gift, thank-you page with cancel link, receipt, cancel', async (browser) => {
  const page = await newPage(browser);
  const email = `monthly-${run}@example.org`;
  const id = await give(page, { amount: '12.34', frequency: 'month', name: 'Ben Monthly', email });
  const link = page.locator('a[href*="/give/cancel"]');
  ok(await link.count() > 0, 'thank-you page of a monthly gift has no cancel link');
  const href = new URL(await link.first().getAttribute('href'), page.url()).href;
  ok(href.startsWith(`${url.tenant}/give/cancel?`), `cancel link ${href} is not on ${url.tenant}`);
  await checkPage(page, 'tenant-thanks-monthly');
  await poll('the first monthly payment to succeed', () =>
    sql(`SELECT count(*) FROM donations WHERE recurring_donation_id = '${id}' AND status = 'succeeded'`) === '1');
  eq(sql(`SELECT status FROM recurring_donations WHERE id = '${id}'`), 'active', 'recurring gift status');
  const mail = await mailTo(email);
  ok(/12\.34/.test(mail.text), `receipt does not show 12.34: ${mail.text.slice(0, 400)}`);
  const inMail = mail.text.match(/https?:\/\/[^\s"<>]+\/give\/cancel\?[^\s"<>]+/);
  ok(inMail, 'receipt has no cancel link');
  const mailLink = inMail[0].replace(/&amp;/g, '&');
  ok(mailLink.startsWith(`${url.tenant}/give/cancel?`) || mailLink.startsWith(`${url.custom}/give/cancel?`),
    `cancel link in the receipt has the wrong scheme, host or port: ${mailLink}`);
  gifts.push({ id, email, amount: 1234, kind: 'recurring' });

  // A wrong token changes nothing.
  const bad = new URL(mailLink);
  bad.searchParams.set('token', 'x'.repeat(bad.searchParams.get('token').length));
  const badResp = await page.goto(bad.href);
  ok(badResp.status() >= 400, `cancel page with a wrong token answered ${badResp.status()}`);

  await page.goto(mailLink);
  await checkPage(page, 'tenant-cancel');
  await submit(page, page.locator('form[action="/give/cancel"] button[type=submit], form[action="/give/cancel"] button').first(), '/give/cancel');
  ok((await page.locator('body').textContent()).includes('Your recurring gift is cancelled.'),
    'no "Your recurring gift is cancelled." after cancelling');
  await axeCheck(page, 'tenant-cancelled');
  await poll('the recurring gift to be canceled', () =>
    sql(`SELECT status FROM recurring_donations WHERE id = '${id}'`) === 'canceled');
  return page;
});

scenario('donor: a card that needs 3-D Secure is confirmed with the bank, or refused without a charge', async (browser) => {
  const page = await newPage(browser);
  // The emulator's 3-D Secure test card: the server-side confirmation answers requires_action,
  // the page runs Stripe.js's bank step (the emulator shows its own confirm/fail dialog).
  const email = `secure-${run}@example.org`;
  await page.goto(`${url.tenant}/`);
  await fillGive(page, { amount: 5000, frequency: 'one_time', name: 'Cy Secure', email, cardNumber: '4000002760003184' });
  await page.getByRole('button', { name: 'Give', exact: true }).click();
  const confirm = page.getByRole('button', { name: 'Complete authentication' });
  await confirm.waitFor({ timeout: 15000 });
  eq((await page.locator('h1').first().textContent()).trim(), 'Confirm with your bank', '3-D Secure heading');
  await pageWeight(page, 'tenant-3ds');
  await page.screenshot({ path: join(shots, 'tenant-3ds-desktop.png'), fullPage: true });
  eq(sql(`SELECT count(*) FROM donations n JOIN donors d ON d.id = n.donor_id
    WHERE d.email = '${email}' AND n.status = 'succeeded'`), '0', 'succeeded gifts before the bank said yes');
  await Promise.all([page.waitForURL(/\/give\/thanks\?gift=/, { timeout: 20000 }), confirm.click()]);
  const id = new URL(page.url()).searchParams.get('gift');
  ok(UUID.test(id || ''), `thank-you URL names no gift: ${page.url()}`);
  await poll('the 3-D Secure gift to succeed', () =>
    sql(`SELECT status FROM donations WHERE id = '${id}'`) === 'succeeded');
  gifts.push({ id, email, amount: 5000, kind: 'one_time' });

  // The bank says no: a message, still on the confirmation page, and nothing charged.
  const refused = `refused-${run}@example.org`;
  await page.goto(`${url.tenant}/`);
  await fillGive(page, { amount: 2500, frequency: 'one_time', name: 'Di Refused', email: refused, cardNumber: '4000002760003184' });
  await page.getByRole('button', { name: 'Give', exact: true }).click();
  await page.getByRole('button', { name: 'Fail authentication' }).click({ timeout: 15000 });
  await page.locator('#confirm-status', { hasText: 'Nothing was charged' }).waitFor({ timeout: 10000 });
  ok(!/\/give\/thanks/.test(page.url()), `a refused payment went on to ${page.url()}`);
  eq(sql(`SELECT count(*) FROM donations n JOIN donors d ON d.id = n.donor_id
    WHERE d.email = '${refused}' AND n.status = 'succeeded'`), '0', 'succeeded gifts after the bank said no');
  return page;
});

scenario('donor: bad input on the donation form shows a message next to the field and writes nothing', async (browser) => {
  const page = await newPage(browser);
  await quiet();
  const before = counts();
  const attempt = async (gift, field, shot) => {
    await page.goto(`${url.tenant}/`);
    await page.locator('form#give').evaluate((f) => { f.noValidate = true; });
    await fillGive(page, gift);
    eq(await submit(page, page.getByRole('button', { name: 'Give', exact: true }), '/give'), 422,
      `gift with a bad ${field}`);
    await fieldError(page, 'form#give', field);
    if (shot) await checkPage(page, shot);
  };
  const good = { frequency: 'one_time', name: 'Cid Bad', email: `bad-${run}@example.org` };
  await attempt({ ...good, amount: 'abc' }, 'amount', 'tenant-give-error');
  await attempt({ ...good, amount: '0.10' }, 'amount');
  await attempt({ ...good, amount: '25.00', email: 'not-an-email' }, 'donor_email');
  await attempt({ ...good, amount: '25.00', name: '' }, 'donor_name');
  sameCounts(before, 'refused gifts');
  return page;
});

scenario('admin: sign in, create a tenant, add a custom domain and see its TXT record', async (browser) => {
  const page = await newPage(browser);
  await page.goto(`${url.admin}/tenants`);
  eq(pathOf(page), '/login', 'an admin page without a session redirects to');
  await checkPage(page, 'admin-login');
  await badLogin(page, url.admin, '/login', env.adminEmail);
  await adminLogin(page);
  eq((await page.locator('h1').first().textContent()).trim(), 'Dashboard', 'dashboard heading');
  ok(await page.locator('svg').count() > 0, 'dashboard has no inline SVG chart');
  await checkPage(page, 'admin-dashboard');

  await page.goto(`${url.admin}/tenants`);
  await checkPage(page, 'admin-tenants');
  const slug = `e2e-${run}`;
  const name = `E2E Chapel ${run}`;
  const form = page.locator('form#new-tenant');
  await form.getByLabel('Slug').fill(slug);
  await form.getByLabel('Name', { exact: true }).fill(name);
  const plans = await form.getByLabel('Plan').locator('option').evaluateAll((os) => os.map((o) => o.value).filter(Boolean));
  await form.getByLabel('Plan').selectOption(plans[0]);
  const status = await submit(page, page.getByRole('button', { name: 'Create tenant' }), '/tenants');
  eq(status, 303, 'POST /tenants');
  const m = pathOf(page).match(/^\/tenants\/([0-9a-f-]{36})$/);
  ok(m, `after creating a tenant the page is ${page.url()}, not /tenants/{id}`);
  const tenantId = m[1];
  eq((await page.locator('h1').first().textContent()).trim(), name, 'tenant page heading');
  eq(sql(`SELECT slug FROM tenants WHERE id = '${tenantId}'`), slug, 'stored slug');
  await checkPage(page, 'admin-tenant');

  // The new tenant appears in the list and its search.
  await page.goto(`${url.admin}/tenants?q=${encodeURIComponent(slug)}`);
  ok(await page.locator(`a[href="/tenants/${tenantId}"]`).count() > 0, 'search does not list the new tenant');

  const hostname = `give-${run}.example.org`;
  await page.goto(`${url.admin}/tenants/${tenantId}`);
  await page.locator('form#add-domain').getByLabel('Domain').fill(hostname);
  eq(await submit(page, page.getByRole('button', { name: 'Add domain' })), 303, 'POST domains');
  eq(pathOf(page), `/tenants/${tenantId}`, 'page after adding a domain');
  const token = sql(`SELECT verification_token FROM tenant_domains WHERE domain = '${hostname}'`);
  ok(token, 'the domain was not stored');
  const row = page.locator('tr', { hasText: hostname });
  ok(await row.count() > 0, 'domains table has no row for the new domain');
  const codes = await row.first().locator('code').allTextContents();
  ok(codes.some((c) => c.includes(hostname) || /^_[\w-]+/.test(c.trim())), `no TXT record name in <code>: ${codes}`);
  ok(codes.some((c) => c.includes(token)), `no TXT value with the token ${token} in <code>: ${codes}`);
  // "Copy" puts the TXT value on the clipboard.
  const copy = row.first().locator('button[data-copy]', { hasText: 'Copy' }).last();
  ok(await copy.count() > 0, 'no Copy button with data-copy');
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: url.admin });
  const copied = await copy.getAttribute('data-copy');
  await copy.click();
  eq(await page.evaluate(() => navigator.clipboard.readText()), copied, 'clipboard after Copy');
  await checkPage(page, 'admin-tenant-domain');
  // "Verify now" looks the record up (nobody published it): the domain stays pending, saying why.
  eq(await submit(page, row.first().getByRole('button', { name: 'Verify now' })), 303, 'POST verify');
  eq(sql(`SELECT status FROM tenant_domains WHERE domain = '${hostname}'`), 'pending_verification',
    'domain status after a failed verification');
  ok(/not found|no txt|failed/i.test(await page.locator('tr', { hasText: hostname }).first().textContent()),
    'the domain row does not say why verification failed');

  // Suspend with a reason, then resume.
  await page.getByLabel(/reason/i).fill('e2e: unpaid invoice');
  eq(await submit(page, page.getByRole('button', { name: 'Suspend' })), 303, 'POST suspend');
  ok((await page.locator('main, body').first().textContent()).includes('suspended'), 'tenant page does not show suspended');
  eq(sql(`SELECT status FROM tenants WHERE id = '${tenantId}'`), 'suspended', 'stored status after suspending');
  eq(await submit(page, page.getByRole('button', { name: 'Resume' })), 303, 'POST resume');
  ok(await page.getByRole('button', { name: 'Suspend' }).count() > 0, 'no Suspend button after resuming');
  ok(sql(`SELECT status FROM tenants WHERE id = '${tenantId}'`) !== 'suspended', 'still suspended after resuming');

  for (const [path, shot] of [['/jobs', 'admin-jobs'], ['/audit', 'admin-audit']]) {
    await page.goto(`${url.admin}${path}`);
    eq(pathOf(page), path, `${path} with a session`);
    await checkPage(page, shot);
  }
  await page.goto(`${url.admin}/audit?action=tenant.create&tenant_id=${tenantId}`);
  ok((await page.content()).includes(slug) || (await page.locator('tbody tr').count()) > 0,
    'audit filtered by tenant shows nothing for the new tenant');

  await submit(page, page.getByRole('button', { name: 'Sign out' }));
  await page.goto(`${url.admin}/`);
  eq(pathOf(page), '/login', 'after signing out, / redirects to');
  return page;
});

scenario('admin: bad input in every form shows a message next to the field and writes nothing', async (browser) => {
  const page = await newPage(browser);
  await adminLogin(page);
  const hope = sql("SELECT id FROM tenants WHERE slug = 'hope'");
  // grace's plan allows custom domains, so there the hostname itself is what is refused.
  const grace = sql("SELECT id FROM tenants WHERE slug = 'grace'");
  await quiet();
  const before = counts();
  // Each form is tried even when an earlier one fails; the scenario reports them all.
  const failures = [];
  const check = async (what, fn) => {
    try {
      await fn();
    } catch (e) {
      failures.push(`${what}: ${e.message}`);
    }
  };

  const tenantForm = async (slug, name, field) => {
    await page.goto(`${url.admin}/tenants`);
    const form = page.locator('form#new-tenant');
    await form.evaluate((f) => { f.noValidate = true; });
    await form.getByLabel('Slug').fill(slug);
    await form.getByLabel('Name', { exact: true }).fill(name);
    eq(await submit(page, page.getByRole('button', { name: 'Create tenant' }), '/tenants'), 422,
      `create tenant (${field} bad)`);
    await fieldError(page, 'form#new-tenant', field);
  };
  await check('new tenant, bad slug', async () => {
    await tenantForm('Not A Slug!', 'Fine Name', 'slug');
    await checkPage(page, 'admin-tenants-error');
  });
  await check('new tenant, no name', () => tenantForm(`ok-${run}`, '', 'name'));
  await check('new tenant, slug taken', () => tenantForm('grace', 'Duplicate of grace', 'slug'));

  const domainForm = async (hostname) => {
    await page.goto(`${url.admin}/tenants/${grace}`);
    await page.locator('form#add-domain').evaluate((f) => { f.noValidate = true; });
    await page.locator('form#add-domain').getByLabel('Domain').fill(hostname);
    eq(await submit(page, page.getByRole('button', { name: 'Add domain' })), 422, `add domain ${hostname}`);
    const why = await fieldError(page, 'form#add-domain', 'hostname');
    ok(!/plan/i.test(why), `refused for another reason: ${why}`);
    return why;
  };
  await check('add domain, not a hostname', async () => {
    await domainForm('not a domain');
    await checkPage(page, 'admin-tenant-error');
  });
  await check('add domain, already taken', async () => {
    const why = await domainForm('grace-church.localhost');
    ok(/already attached/i.test(why), `taken domain refused for another reason: ${why}`);
  });

  await check('Stripe account, malformed', async () => {
    await page.goto(`${url.admin}/tenants/${hope}`);
    await page.getByLabel('Stripe account').fill('not-an-account');
    eq(await submit(page, page.getByRole('button', { name: 'Save account' })), 422, 'bad Stripe account');
    await fieldError(page, `form[action="/tenants/${hope}/stripe-account"]`, 'account_id');
  });

  await check('suspend, no reason', async () => {
    await page.goto(`${url.admin}/tenants/${hope}`);
    await page.getByLabel(/reason/i).fill('   ');
    eq(await submit(page, page.getByRole('button', { name: 'Suspend' })), 422, 'suspend without a reason');
    await fieldError(page, `form[action="/tenants/${hope}/suspend"]`, 'reason');
    eq(sql(`SELECT status FROM tenants WHERE id = '${hope}'`), 'trial', 'hope after a refused suspension');
  });

  await check('audit filter, bad tenant id', async () => {
    await page.goto(`${url.admin}/audit`);
    await page.getByLabel('Tenant id').fill('not-a-uuid');
    await Promise.all([page.waitForEvent('load'), page.getByLabel('Tenant id').press('Enter')]);
    await fieldError(page, 'form[action="/audit"]', 'tenant_id');
  });

  await check('nothing written', async () => sameCounts(before, 'refused admin forms'));
  if (failures.length) throw new Failure(failures.join('\n  '));
  return page;
});

scenario('staff: sign in, donations, CSV rows match the gifts, reports and domains', async (browser) => {
  const page = await newPage(browser);
  await page.goto(`${url.tenant}/staff`);
  eq(pathOf(page), '/staff/login', 'the staff area without a session redirects to');
  await checkPage(page, 'staff-login');
  await badLogin(page, url.tenant, '/staff/login', env.staffEmail);
  await staffLogin(page);
  eq((await page.locator('h1').first().textContent()).trim(), 'Donations', 'staff heading');
  await checkPage(page, 'staff-donations');

  const tenant = sql("SELECT id FROM tenants WHERE slug = 'grace'");
  const link = page.getByRole('link', { name: 'Download CSV' });
  const href = new URL(await link.getAttribute('href'), page.url()).href;
  const resp = await browserGet(page, href);
  eq(resp.status, 200, 'GET the CSV');
  ok(/text\/csv/.test(resp.type), `CSV served as ${resp.type}`);
  const csv = resp.text;
  if (/attachment/.test(resp.disposition)) {
    // Offered as a file: the browser downloads the same rows.
    const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
    const file = await readFile(await download.path(), 'utf8');
    eq(file.trim().split(/\r?\n/).length, csv.trim().split(/\r?\n/).length, 'downloaded CSV rows');
  }
  // Every donation of the tenant is one row, and every row is one donation (as a multiset of
  // donor e-mail, kind, amount, status), and the gifts made above are there.
  const rows = parseCsv(csv);
  const key = (r) => [r.donor_email, r.kind, r.amount_minor, r.status].join('|');
  const stored = sql(`SELECT d.email || '|' || n.kind || '|' || n.amount_minor || '|' || n.status
    FROM donations n JOIN donors d ON d.id = n.donor_id WHERE n.tenant_id = '${tenant}'`)
    .split('\n').filter(Boolean).sort();
  eq(JSON.stringify(rows.map(key).sort()), JSON.stringify(stored), 'CSV rows vs. the donations stored');
  for (const g of gifts) {
    ok(rows.some((r) => r.donor_email === g.email && r.amount_minor === String(g.amount)
      && r.status === 'succeeded'), `CSV has no succeeded row of ${g.amount} for ${g.email}`);
  }

  // Filters: the CSV link carries them and every row matches.
  await page.getByLabel(/status/i).selectOption('succeeded');
  await Promise.all([page.waitForLoadState('load'), page.locator('form').filter({ has: page.locator('[name=status]') })
    .evaluate((f) => f.requestSubmit ? f.requestSubmit() : f.submit())]);
  await page.waitForURL(/status=succeeded/);
  const filtered = new URL(await page.getByRole('link', { name: 'Download CSV' }).getAttribute('href'), page.url());
  eq(filtered.searchParams.get('status'), 'succeeded', 'status filter on the CSV link');
  const fcsv = parseCsv((await browserGet(page, filtered.href)).text);
  const succeeded = Number(sql(`SELECT count(*) FROM donations WHERE tenant_id = '${tenant}' AND status = 'succeeded'`));
  eq(fcsv.length, succeeded, 'filtered CSV rows vs. succeeded donations');
  ok(fcsv.every((r) => r.status === 'succeeded'), 'filtered CSV has rows of another status');

  // A status no donation can have is refused next to the filter.
  await page.goto(`${url.tenant}/staff?status=bogus`);
  await fieldError(page, 'form[action="/staff"]', 'status');

  await page.getByRole('link', { name: 'Reports' }).click();
  await page.waitForLoadState('load');
  await checkPage(page, 'staff-reports');
  await page.goto(`${url.tenant}/staff/domains`);
  const domainRow = page.locator('tr', { hasText: 'grace-church.localhost' });
  ok(await domainRow.count() > 0, 'staff domains page does not list grace-church.localhost');
  ok((await domainRow.first().textContent()).includes('active'), 'staff domains page does not show the status');
  await checkPage(page, 'staff-domains');
  return page;
});

// ---------- runner ----------

const only = process.argv.slice(2);
const chosen = scenarios.filter((s) => !only.length || only.some((o) => s.name.includes(o)));
const browser = await launch();
const results = [];
for (const s of chosen) {
  const t = Date.now();
  let page;
  try {
    page = await Promise.race([
      s.fn(browser),
      new Promise((_, rej) => setTimeout(() => rej(new Failure('scenario took over 120 s')), 120000)),
    ]);
    if (page && page.problems.length) throw new Failure(page.problems.join('\n  '));
    results.push({ name: s.name, ok: true, ms: Date.now() - t });
    console.log(`ok    ${s.name} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
  } catch (e) {
    results.push({ name: s.name, ok: false, ms: Date.now() - t, error: String(e.message || e) });
    console.log(`FAIL  ${s.name} (${((Date.now() - t) / 1000).toFixed(1)} s)\n  ${e instanceof Failure ? e.message : e.stack}`);
    for (const p of browser.contexts().flatMap((c) => c.pages())) {
      const file = join(shots, `FAILED-${s.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60)}.png`);
      await p.screenshot({ path: file, fullPage: true }).catch(() => {});
      console.log(`  at ${p.url()} (screenshot ${file})`);
      for (const problem of p.problems || []) console.log(`  ${problem}`);
    }
  } finally {
    for (const c of browser.contexts()) await c.close().catch(() => {});
  }
}
await browser.close();
writeReport(results);
const passed = results.filter((r) => r.ok).length;
console.log(`\n${passed} passed, ${results.length - passed} failed`);
process.exit(passed === results.length && results.length > 0 ? 0 : 1);
