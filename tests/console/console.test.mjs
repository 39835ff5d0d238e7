// Real-browser test of the web console (GET /console of `rtm2 serve --http`), run by
// scripts/test-console, which builds rtm2, starts the server and sets:
//   RTM2_BIN        the rtm2 binary (for `rtm2 subscribe`)
//   RTM2_PORT       the server's RTM port (tcp://127.0.0.1:RTM2_PORT)
//   RTM2_HTTP_PORT  its HTTP port (console, REST)
//   RTM2_HTTP_AUTH  KEY:SECRET given to --http-auth
//   RTM2_CHROMIUM   the browser (default /usr/bin/chromium)
// Headless Chromium (puppeteer-core, no browser of its own) opens the console on channel lobby of a
// fresh app; a real user (rtm2 subscribe) comes online and 3 messages are published through the
// REST API: each must show up live on the page. Saves a screenshot to RTM2_CONSOLE_SCREENSHOT
// (scripts/test-console: target/console.png; docs/images/console.png with --update-docs).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';

function need(name) {
  const v = process.env[name];
  assert.ok(v, `${name} is not set (run scripts/test-console)`);
  return v;
}

const BIN = need('RTM2_BIN');
const RTM_PORT = need('RTM2_PORT');
const HTTP_PORT = need('RTM2_HTTP_PORT');
const AUTH = process.env.RTM2_HTTP_AUTH || 'admin:s3cret';
const CHROMIUM = process.env.RTM2_CHROMIUM || '/usr/bin/chromium';
const [USERNAME, PASSWORD] = [AUTH.slice(0, AUTH.indexOf(':')), AUTH.slice(AUTH.indexOf(':') + 1)];
const BASE = `http://127.0.0.1:${HTTP_PORT}`;
const APP = randomBytes(16).toString('hex'); // a fresh app: nothing else on the page
const CHANNEL = 'lobby';
const SCREENSHOT = process.env.RTM2_CONSOLE_SCREENSHOT
  || fileURLToPath(new URL('../../target/console.png', import.meta.url));
const BASIC = 'Basic ' + Buffer.from(AUTH).toString('base64');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Cleanup runs even when an assertion fails: the browser and the subscriber never outlive the test.
let browser = null;
let child = null;
after(async () => {
  await stopChild(child);
  if (browser) {
    await Promise.race([browser.close().catch(() => {}), sleep(5000)]);
    try { browser.process()?.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

async function stopChild(c) {
  if (!c || c.exitCode !== null || c.signalCode !== null) return;
  const gone = new Promise((r) => c.once('exit', r));
  c.kill('SIGINT'); // rtm2 subscribe logs out on Ctrl-C
  if (await Promise.race([gone.then(() => true), sleep(3000).then(() => false)])) return;
  c.kill('SIGKILL');
  await Promise.race([gone, sleep(2000)]);
}

// Waits (bounded) until fn(...args) is truthy in the page; on timeout the error says what was
// awaited and what the page showed.
async function waitInPage(page, what, timeoutMs, fn, ...args) {
  try {
    await page.waitForFunction(fn, { timeout: timeoutMs, polling: 100 }, ...args);
  } catch (e) {
    const shown = await page.evaluate(() => {
      const t = (id) => (document.getElementById(id)?.innerText || '').replace(/\s+/g, ' ').trim().slice(0, 300);
      return {
        status: t('status'), snapshots: document.body.dataset.snapshots, users: t('users'), channels: t('channels'),
        presence: t('presence'), tail: t('tail'),
        errors: [...document.querySelectorAll('.error')].map((x) => `${x.id}: ${x.textContent}`).filter((x) => !x.endsWith(': ')),
      };
    }).catch((x) => `(page not readable: ${x.message})`);
    throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}; the page showed ${JSON.stringify(shown)} (${e.message.split('\n')[0]})`);
  }
}

test('the console shows a user coming online and messages live', { timeout: 120_000 }, async () => {
  // Without credentials: 401 with a Basic challenge (so a browser prompts).
  const anon = await fetch(`${BASE}/console`, { signal: AbortSignal.timeout(5000) });
  assert.equal(anon.status, 401, `GET /console without credentials: expected 401, got ${anon.status}`);
  assert.match(anon.headers.get('www-authenticate') || '', /^Basic\b/i,
    `GET /console without credentials: expected a WWW-Authenticate: Basic challenge, got ${anon.headers.get('www-authenticate')}`);
  await anon.body?.cancel();

  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // As root (CI) Chromium needs --no-sandbox; the network flags keep it from calling out.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
      '--no-default-browser-check', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 30_000,
  });
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 800 });
  await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: 'light' }]);
  const pageErrors = [];
  const consoleErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.setDefaultTimeout(15_000);
  await page.authenticate({ username: USERNAME, password: PASSWORD });

  const url = `${BASE}/console?app=${APP}&channel=${CHANNEL}`;
  const res = await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 15_000 });
  assert.equal(res.status(), 200, `GET ${url} with credentials: expected 200, got ${res.status()}`);
  assert.equal(await page.title(), 'rtm2 console');
  await waitInPage(page, 'the first snapshot from /console/events', 10_000,
    () => Number(document.body.dataset.snapshots) >= 1);
  await waitInPage(page, `channel ${CHANNEL} selected from the URL`, 5000,
    (ch) => document.getElementById('channel-title')?.textContent === ch, CHANNEL);
  assert.deepEqual(pageErrors, [], `the page threw: ${pageErrors.join(' | ')}`);

  // A real user comes online: rtm2 subscribe (development mode: no token).
  let out = '';
  let err = '';
  child = spawn(BIN, ['subscribe', '--endpoint', `tcp://127.0.0.1:${RTM_PORT}`, '--app-id', APP, '--user-id', 'alice', CHANNEL],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RTM2_LOG: 'warn' } });
  child.stdout.setEncoding('utf8').on('data', (d) => { out += d; });
  child.stderr.setEncoding('utf8').on('data', (d) => { err += d; });
  const exited = new Promise((r) => child.once('exit', (code, sig) => r(`rtm2 subscribe exited (${code ?? sig}): ${err.trim()}`)));
  const subscribed = (async () => {
    for (const end = Date.now() + 15_000; Date.now() < end; await sleep(50)) if (err.includes(`subscribed to ${CHANNEL}`)) return null;
    return `rtm2 subscribe did not subscribe within 15 s; its stderr: ${err.trim()}`;
  })();
  const problem = await Promise.race([subscribed, exited]);
  assert.equal(problem, null, problem);

  await waitInPage(page, 'alice in the users list (#users)', 15_000,
    () => !!document.querySelector('#users [data-user-id="alice"]'));
  // subscribers counts alice (and the console's own tail); occupancy (presence) alice only.
  await waitInPage(page, `${CHANNEL}'s row with subscribers >= 1 and occupancy >= 1`, 10_000, (ch) => {
    const cell = (f) => Number(document.querySelector(`#channels tr[data-channel="${ch}"] [data-field="${f}"]`)?.textContent.replace(/,/g, ''));
    return cell('subscribers') >= 1 && cell('occupancy') >= 1;
  }, CHANNEL);
  await waitInPage(page, 'alice in the channel\'s presence (GET …/users?states=true)', 10_000,
    () => !!document.querySelector('#presence [data-user-id="alice"]'));
  await waitInPage(page, 'the tail of the channel to be live', 10_000,
    () => /live/.test(document.getElementById('tail-state')?.textContent || ''));

  // 3 messages through the REST API, each must reach the page's tail (and alice).
  for (let n = 1; n <= 3; n++) {
    const body = { channel_name: CHANNEL, payload: `hello ${n}` };
    const r = await fetch(`${BASE}/dev/v2/project/${APP}/rtm/users/bob/channel_messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: BASIC },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(5000),
    });
    const text = await r.text();
    assert.equal(r.status, 200, `POST channel_messages ${JSON.stringify(body)}: expected 200, got ${r.status} ${text}`);
    assert.equal(JSON.parse(text).result, 'success', `POST channel_messages: ${text}`);
    await waitInPage(page, `"hello ${n}" from bob in the tail (#tail)`, 10_000, (m) =>
      [...document.querySelectorAll('#tail [data-publisher="bob"]')].some((li) => li.textContent.includes(m)), `hello ${n}`);
  }
  const tailTexts = await page.$$eval('#tail [data-publisher]', (lis) => lis.map((li) => li.querySelector('[data-field="message"]')?.textContent));
  assert.deepEqual(tailTexts, ['hello 3', 'hello 2', 'hello 1'], 'the tail lists the messages newest first');
  for (const end = Date.now() + 10_000; !out.includes('hello 3') && Date.now() < end;) await sleep(50);
  assert.match(out, /lobby bob: hello 1[\s\S]*hello 2[\s\S]*hello 3/, `alice (rtm2 subscribe) got the 3 messages; its stdout: ${out}`);
  await waitInPage(page, `${CHANNEL}'s messages total >= 3`, 10_000, (ch) => {
    const cell = document.querySelector(`#channels tr[data-channel="${ch}"] [data-field="messages_total"]`);
    return cell && Number(cell.textContent.replace(/,/g, '')) >= 3;
  }, CHANNEL);

  // A click on a user shows GET /v1/apps/{app}/users/{user}.
  await page.click('#users [data-user-id="alice"]');
  await waitInPage(page, 'alice shown online in the user panel', 10_000, (ch) =>
    document.getElementById('user-online')?.dataset.online === 'true' &&
    !!document.querySelector(`#user-channels [data-channel="${ch}"]`), CHANNEL);

  // Every panel answered without an error (the REST contract), and the page never threw.
  await sleep(2500); // a presence/metadata/locks refresh and a few more points on the chart
  const shownErrors = await page.$$eval('.error', (xs) => xs.filter((x) => x.textContent).map((x) => `${x.id}: ${x.textContent}`));
  assert.deepEqual(shownErrors, [], `the page shows errors: ${shownErrors.join(' | ')}`);
  assert.deepEqual(pageErrors, [], `the page threw: ${pageErrors.join(' | ')}`);
  assert.deepEqual(consoleErrors, [], `the browser logged errors: ${consoleErrors.join(' | ')}`);
  const chart = await page.$eval('#chart', (c) => ({ w: c.width, h: c.height }));
  assert.ok(chart.w > 100 && chart.h > 50, `the chart canvas is drawn (${chart.w}x${chart.h})`);

  mkdirSync(dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT });
});
