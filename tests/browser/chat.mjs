// The chat page (examples/chat/www/index.html) in headless Chromium, driven
// by playwright-core as two people would use it.
//
// Usage: BROWSER_NODE_MODULES=DIR CHROMIUM=PATH node chat.mjs URL SCREENSHOT
//
// URL is where `host serve chat.wasm --static examples/chat/www` serves the
// page (http://ADDR/). DIR is a folder whose node_modules/ holds
// playwright-core (ESM import resolution does not follow NODE_PATH, so the
// script loads it through createRequire). CHROMIUM is the browser to launch
// (default /usr/bin/chromium): Playwright's own browser download is not used.
//
// Two people, each in a browser context of their own (no shared storage),
// join the same room: ann sees ben join and the member count go to 2; ann
// sends a line with Enter and ben sees it under ann's name; ben leaves and
// ann sees him go. A third context checks what the room's guest rarely
// sends in a short test (a ping: no log entry, only a quiet indicator; an
// error; a close code from the server) by routing its socket through
// Playwright to the real server and adding those messages. The page must
// fetch nothing from another origin and log no script errors.
//
// Prints one `ok: ...` line per check, writes a screenshot of ann's page to
// SCREENSHOT (on failure too, when it can), and ends with
// `PASS: N checks` (exit 0) or `FAIL: why` (exit 1); exit 2 on bad usage.

import { createRequire } from 'node:module';
import path from 'node:path';

const [url, screenshot] = process.argv.slice(2);
const modules = process.env.BROWSER_NODE_MODULES;
if (!url || !screenshot || !modules) {
  console.error('usage: BROWSER_NODE_MODULES=DIR node chat.mjs URL SCREENSHOT');
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(modules), 'package.json'));
const { chromium } = require('playwright-core');

const ROOM = 'lobby';
const TIMEOUT = 15_000;
// The whole run, browser start included, ends by then.
const DEADLINE = setTimeout(() => fail(new Error('the script ran out of time (90 s)')), 90_000);

let checks = 0;
function ok(what) {
  checks += 1;
  console.log(`ok: ${what}`);
}
function check(condition, what) {
  if (!condition) throw new Error(`check failed: ${what}`);
  ok(what);
}

let browser;
let annPage;
const problems = [];

async function fail(error) {
  console.log(`FAIL: ${error && error.message ? error.message : error}`);
  if (annPage) {
    await annPage.screenshot({ path: screenshot, fullPage: true }).catch(() => {});
    console.log(`screenshot: ${screenshot}`);
  }
  await browser?.close().catch(() => {});
  process.exit(1);
}

/// A fresh context and page for one person, watched for errors and for
/// requests that leave the page's origin.
async function person(name) {
  const context = await browser.newContext({ viewport: { width: 900, height: 700 } });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const origin = new URL(url).origin;
  const wsOrigin = origin.replace(/^http/, 'ws');
  page.on('request', (request) => {
    const target = request.url();
    if (!target.startsWith(origin) && !target.startsWith(wsOrigin)) {
      problems.push(`${name}'s page fetched ${target}`);
    }
  });
  page.on('response', (response) => {
    if (response.status() >= 400) problems.push(`${name}'s page got ${response.status()} for ${response.url()}`);
  });
  page.on('pageerror', (error) => problems.push(`${name}'s page threw: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`${name}'s console: ${message.text()}`);
  });
  return page;
}

async function open(page) {
  const response = await page.goto(url);
  check(response && response.ok(), `GET ${url} answers ${response && response.status()}`);
}

async function join(page, nick, { enter = false } = {}) {
  await page.fill('#room', ROOM);
  await page.fill('#nick', nick);
  if (enter) {
    await page.press('#nick', 'Enter');
  } else {
    await page.click('#join');
  }
  await page.locator('#status[data-state="open"]').waitFor();
  await expectText(page, '#status', `Connected to ${ROOM} as ${nick}`);
}

/// Wait until `selector`'s text contains `text`.
async function expectText(page, selector, text) {
  try {
    await page.waitForFunction(
      ([s, t]) => document.querySelector(s)?.textContent.includes(t),
      [selector, text],
      { timeout: TIMEOUT },
    );
  } catch {
    const actual = await page.locator(selector).textContent().catch(() => '(missing)');
    throw new Error(`${selector} never showed ${JSON.stringify(text)}; it shows ${JSON.stringify(actual)}`);
  }
}

/// The log entries of a page, as {type, text, from, body}.
async function entries(page) {
  return page.$$eval('#messages li', (items) =>
    items.map((li) => ({
      type: li.dataset.type,
      text: li.textContent,
      nick: li.querySelector('.nick')?.textContent ?? null,
      from: li.querySelector('.from')?.textContent ?? null,
      body: li.querySelector('.text')?.textContent ?? null,
    })),
  );
}

/// Wait for a log entry of `type` matching `match`, and return it.
async function expectEntry(page, type, match, what) {
  const deadline = Date.now() + TIMEOUT;
  for (;;) {
    const found = (await entries(page)).find((e) => e.type === type && match(e));
    if (found) {
      ok(what);
      return found;
    }
    if (Date.now() > deadline) {
      throw new Error(`${what}: no such entry; the log has ${JSON.stringify(await entries(page))}`);
    }
    await page.waitForTimeout(50);
  }
}

async function members(page, n, what) {
  await page.locator(`#members[data-count="${n}"]`).waitFor().catch(async () => {
    const shown = await page.locator('#members').textContent();
    throw new Error(`${what}: #members shows ${JSON.stringify(shown)}`);
  });
  const text = await page.locator('#members').textContent();
  check(text === (n === 1 ? '1 member' : `${n} members`), `${what} (${text})`);
}

async function main() {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // Playwright gives the browser a fresh user data dir of its own (and
    // removes it afterwards); it refuses --user-data-dir with launch().
    args: [
      '--headless',
      '--no-sandbox', // root on CI
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    timeout: 30_000,
  });
  ok(`launched ${browser.browserType().name()} ${browser.version()}`);

  // ann opens the page and joins.
  annPage = await person('ann');
  await open(annPage);
  check((await annPage.title()) === 'wsbox chat', 'the page has its title');
  check(await annPage.locator('#line').isDisabled(), 'the message box waits for a join');
  for (const id of ['room', 'nick', 'line']) {
    const label = await annPage.locator(`label[for="${id}"]`).count();
    check(label === 1, `#${id} has a label`);
  }
  check(
    (await annPage.locator('#messages').getAttribute('aria-live')) === 'polite',
    'the message list is a polite live region',
  );
  await join(annPage, 'ann');
  ok('ann joins with the Join button');
  await expectEntry(annPage, 'welcome', (e) => e.text.includes('only one here'), 'ann is welcomed alone');
  await members(annPage, 1, 'ann sees 1 member');

  // ben, in a context of his own, joins the same room with Enter.
  const benPage = await person('ben');
  await open(benPage);
  await join(benPage, 'ben', { enter: true });
  ok('ben joins with Enter');
  await expectEntry(benPage, 'welcome', (e) => e.text.includes('2 members'), 'ben is welcomed with 2 members');
  await members(benPage, 2, 'ben sees 2 members');
  await expectEntry(annPage, 'joined', (e) => e.nick === 'ben', 'ann sees ben join');
  await members(annPage, 2, 'ann sees 2 members');

  // ann says something with Enter; both see it under her name.
  const line = 'hello ben <b>not bold</b> & ünïcode ✓';
  await annPage.fill('#line', line);
  await annPage.press('#line', 'Enter');
  await expectEntry(benPage, 'said', (e) => e.from === 'ann' && e.body === line, "ben sees ann's line under her name");
  await expectEntry(annPage, 'said', (e) => e.from === 'ann' && e.body === line, 'ann sees her own line');
  check((await annPage.inputValue('#line')) === '', 'the message box is emptied after sending');
  check((await benPage.locator('#messages b').count()) === 0, 'markup in a line is shown as text');

  // ben answers, then leaves.
  await benPage.fill('#line', 'hi ann, bye');
  await benPage.click('#send');
  await expectEntry(annPage, 'said', (e) => e.from === 'ben' && e.body === 'hi ann, bye', "ann sees ben's answer");
  await benPage.click('#leave');
  await expectText(benPage, '#status', `Left ${ROOM} (code 1000 (normal closure)`);
  ok('ben leaves with a normal close');
  check(await benPage.locator('#line').isDisabled(), "ben's message box is off once he has left");
  await expectEntry(annPage, 'left', (e) => e.nick === 'ben', 'ann sees ben leave');
  await members(annPage, 1, 'ann is alone again');

  // ben comes back with the Reconnect button.
  check(await benPage.locator('#reconnect').isEnabled(), 'ben can reconnect');
  await benPage.click('#reconnect');
  await benPage.locator('#status[data-state="open"]').waitFor();
  await expectEntry(annPage, 'joined', (e) => e.nick === 'ben' && e.text.includes('joined'), 'ben reconnects');
  await members(annPage, 2, 'ann sees 2 members again');

  // A bad nickname is caught before connecting.
  const eve = await person('eve');
  await open(eve);
  await eve.fill('#room', ROOM);
  await eve.fill('#nick', 'no spaces');
  await eve.click('#join');
  await expectText(eve, '#status', 'check the nickname');
  check((await eve.locator('#nick').getAttribute('aria-invalid')) === 'true', 'a bad nickname is marked invalid');

  // What the guest rarely sends in a short test, through a routed socket:
  // the page talks to the real server, and the route adds a ping, an error
  // and finally the server's close with a code.
  let route;
  let server;
  await eve.routeWebSocket(/\/chat\//, (ws) => {
    server = ws.connectToServer();
    route = ws;
  });
  await join(eve, 'eve');
  await expectEntry(eve, 'welcome', (e) => e.text.includes('3 members'), 'eve joins through the routed socket');
  const before = (await entries(eve)).length;
  check(await eve.locator('#ping').isHidden(), 'no ping indicator before a ping');
  route.send(JSON.stringify({ type: 'ping' }));
  await eve.locator('#ping').waitFor({ state: 'visible' });
  await expectText(eve, '#ping', 'checked in at');
  check((await entries(eve)).length === before, 'a ping adds nothing to the log');
  route.send(JSON.stringify({ type: 'error', error: 'not a chat message' }));
  await expectEntry(eve, 'error', (e) => e.text.includes('not a chat message'), 'an error from the room is shown');
  await route.close({ code: 4001, reason: 'kicked' });
  await expectText(eve, '#status', 'Disconnected: code 4001: kicked');
  await expectEntry(eve, 'closed', (e) => e.text.includes('4001: kicked'), "the server's close code and reason are shown");
  check(await eve.locator('#reconnect').isEnabled(), 'eve can reconnect after being closed');
  await server.close({ code: 1000 });
  await expectEntry(annPage, 'left', (e) => e.nick === 'eve', 'ann sees eve go');
  await members(annPage, 2, 'ann counts 2 members again');

  await annPage.screenshot({ path: screenshot, fullPage: true });
  console.log(`screenshot: ${screenshot}`);

  if (problems.length) throw new Error(problems.join('; '));
  ok('no page fetched anything elsewhere or logged an error');

  await browser.close();
  clearTimeout(DEADLINE);
  console.log(`PASS: ${checks} checks`);
}

main().catch(fail);
