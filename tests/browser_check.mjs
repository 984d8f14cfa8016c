// Headless-Chromium check of the built book, driven by tests/test_browser.py (which serves
// _build/html on loopback and asserts on the JSON this prints).
//
//   node tests/browser_check.mjs '{"base": "http://127.0.0.1:PORT/", "pages": ["book/intro", ...],
//        "executable": "/usr/bin/chromium", "outDir": "artifacts/screenshots",
//        "sliderPage": "notebooks/01_superposition", "dashboardPage": "notebooks/06_gpt2_sae",
//        "navPages": ["book/intro", ...], "widths": [1366, 390, 800], "fullWidths": [1366, 390],
//        "pagesAt": {"800": ["book/intro", ...]}, "searchQuery": "superposition"}'
//
// Every page (or, where pagesAt names a width, those pages) is loaded at every width in `widths`
// (a fresh context each time, light colour scheme, touch enabled below 1000 px). At each: console
// errors and uncaught exceptions; every request that leaves loopback (aborted and recorded);
// local requests that fail; MathJax (every .math element typeset, no mjx-merror, no raw "$$");
// images loaded; widget views rendered; the page's width (document scrollWidth against the
// viewport, and the visible elements that stick out); every display equation's width against its
// box (see measureLayout); every slider's readout. Then the page is switched to the dark colour
// scheme (prefers-color-scheme emulation, which the theme follows) and the text of widget HTML is
// measured for contrast (measureContrast). On navPages the menu and page-contents buttons are
// tapped (below 960 px: their dialogs must show links) or clicked (from 960 px: the menu button
// hides and shows the sidebar). On sliderPage (first width) the slider is moved with the
// keyboard; on dashboardPage (below 1000 px) a token is tapped and its activation must show.
// Screenshots: the first screen of every page at every width, light and dark
// (PAGE-WIDTH[-dark].png), the full page at fullWidths (PAGE-WIDTH-full.png; in dark too for
// pages with widgets below 1000 px) and the tapped dashboard (PAGE-WIDTH-dashboard-tap.png).
// Last, the search page for searchQuery: its results and their snippets.
import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";

const cfg = JSON.parse(process.argv[2]);
fs.mkdirSync(cfg.outDir, { recursive: true });
const widths = cfg.widths || [1366];

const isLocal = (url) => {
  if (url.startsWith("data:") || url.startsWith("blob:") || url.startsWith("about:")) return true;
  try {
    const host = new URL(url).hostname;
    return host === "127.0.0.1" || host === "localhost" || host === "[::1]";
  } catch {
    return false;
  }
};

const browser = await chromium.launch({
  executablePath: cfg.executable,
  headless: true,
  // launch() gives each run a fresh temporary profile (the --user-data-dir of a manual launch).
  args: [
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
  ],
});

async function waitFor(page, fn, timeoutMs) {
  try {
    await page.waitForFunction(fn, null, { timeout: timeoutMs, polling: 200 });
    return true;
  } catch {
    return false;
  }
}

// In the page: the layout measurements. A display equation "overflows" when its typeset width
// (the mjx-container's scrollWidth) exceeds its box (clientWidth) by more than 1 px. It is
// "clipped" when it overflows and its box cannot be scrolled (overflow-x neither auto nor scroll)
// or shows no cue (no gradient background: the scroll shadow of book/_ext/static/saelab-book.css).
function measureLayout() {
  const vw = window.innerWidth;
  const describe = (e) => `${e.tagName.toLowerCase()}.${String(e.className).split(" ").slice(0, 2).join(".")}`
    + ` "${(e.textContent || "").trim().slice(0, 40)}" right=${Math.round(e.getBoundingClientRect().right)}`;
  const main = document.querySelector("main") || document.body;
  // Elements sticking out of the viewport on the right, outermost only; children of a box that
  // scrolls horizontally are inside the viewport as far as the page is concerned.
  const scrolls = (e) => ["auto", "scroll"].includes(getComputedStyle(e).overflowX);
  const outside = [];
  // Hidden and fixed elements (the closed sidebars) do not count; a typeset formula is measured
  // as a whole (its assistive MathML is visually hidden on purpose).
  const walk = (e) => {
    for (const c of e.children) {
      const cs = getComputedStyle(c);
      if (cs.position === "fixed" || !c.checkVisibility({ visibilityProperty: true })) continue;
      const r = c.getBoundingClientRect();
      if (r.width > 0 && r.right > vw + 1) {
        outside.push(describe(c));
        continue;
      }
      if (!scrolls(c) && c.tagName !== "MJX-CONTAINER") walk(c);
    }
  };
  walk(main);
  const displays = [...document.querySelectorAll('mjx-container[display="true"]')].map((c) => {
    const cs = getComputedStyle(c);
    const overflows = c.scrollWidth > c.clientWidth + 1;
    const scrollable = ["auto", "scroll"].includes(cs.overflowX);
    const cue = cs.backgroundImage.includes("gradient");
    return { overflows, clipped: overflows && !(scrollable && cue), tex: (c.previousSibling?.textContent || c.parentElement.textContent || "").slice(0, 60),
             width: c.scrollWidth, box: c.clientWidth };
  });
  const readouts = [...document.querySelectorAll(".widget-slider .widget-readout")].filter((e) => e.offsetParent !== null).map((e) => {
    const r = e.getBoundingClientRect();
    return { text: e.textContent.trim(), left: Math.round(r.left), right: Math.round(r.right), width: Math.round(r.width) };
  });
  return { viewport: vw, scrollWidth: document.documentElement.scrollWidth, outside: outside.slice(0, 10),
           displays: displays.length, overflowing: displays.filter((d) => d.overflows).length,
           clipped: displays.filter((d) => d.clipped), readouts };
}

// In the page: WCAG contrast of every text element inside widget HTML against the colour behind it.
function measureContrast() {
  const parse = (s) => { const m = s.match(/[\d.]+/g) || [0, 0, 0, 0]; return { r: +m[0], g: +m[1], b: +m[2], a: m[3] === undefined ? 1 : +m[3] }; };
  const over = (top, bottom) => ({ r: top.r * top.a + bottom.r * (1 - top.a), g: top.g * top.a + bottom.g * (1 - top.a), b: top.b * top.a + bottom.b * (1 - top.a), a: 1 });
  const background = (e) => {
    const layers = [];
    for (let n = e; n; n = n.parentElement) layers.push(parse(getComputedStyle(n).backgroundColor));
    return layers.reverse().reduce((acc, c) => over(c, acc), { r: 255, g: 255, b: 255, a: 1 });
  };
  const lum = (c) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }; return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  const worst = [];
  for (const e of document.querySelectorAll(".widget-html-content *")) {
    const own = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || e.offsetParent === null) continue;
    const bg = background(e);
    const fg = over(parse(getComputedStyle(e).color), bg);
    const [l1, l2] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    const ratio = (l1 + 0.05) / (l2 + 0.05);
    if (ratio < 4.5) worst.push({ text: e.textContent.trim().slice(0, 30), ratio: Math.round(ratio * 100) / 100 });
  }
  return { theme: document.documentElement.dataset.theme, low: worst.slice(0, 10), nLow: worst.length };
}

// Tap a sidebar button (the visible one of `selector`) and report which links became visible.
async function tapToggle(page, selector, linkSelector, touch) {
  const button = page.locator(selector).filter({ visible: true }).first();
  if (await button.count() === 0) return { button: false };
  if (touch) await button.tap(); else await button.click();
  await page.waitForTimeout(400);
  const links = await page.evaluate((sel) => [...document.querySelectorAll(sel)].filter((a) => {
    const r = a.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && r.right > 0 && r.left < window.innerWidth && a.checkVisibility({ visibilityProperty: true, opacityProperty: true });
  }).map((a) => a.getAttribute("href")), linkSelector);
  await page.keyboard.press("Escape");
  await page.waitForTimeout(300);
  return { button: true, links };
}

async function checkNavigation(page, width) {
  if (width < 960) {
    return {
      menu: await tapToggle(page, "button.primary-toggle", "dialog[open] nav.bd-docs-nav a.reference", true),
      contents: await tapToggle(page, "button.secondary-toggle", "dialog[open] a.nav-link[href^='#']", true),
    };
  }
  const shown = () => page.evaluate(() => { const s = document.getElementById("pst-primary-sidebar"); return !!s && s.getBoundingClientRect().width > 0; });
  const before = await shown();
  const button = page.locator("button.primary-toggle").filter({ visible: true }).first();
  await button.click();
  await page.waitForTimeout(300);
  const afterOne = await shown();
  await button.click();
  await page.waitForTimeout(300);
  return { sidebar: [before, afterOne, await shown()] };
}

const results = {};
for (const width of widths) {
  const narrow = width < 1000;
  for (const name of (cfg.pagesAt && cfg.pagesAt[width]) || cfg.pages) {
    const r = {
      width, consoleErrors: [], pageErrors: [], external: [], failedLocal: [], math: null, images: null,
      widgets: null, layout: null, contrast: null, nav: null, slider: null, tap: null, colab: [], screenshot: null,
    };
    results[`${name}@${width}`] = r;
    const started = Date.now();
    const context = await browser.newContext({ viewport: { width, height: narrow ? 844 : 900 }, hasTouch: narrow, colorScheme: "light" });
    await context.route("**/*", (route) => {
      const url = route.request().url();
      if (isLocal(url)) return route.continue();
      r.external.push(url);
      return route.abort("blockedbyclient");
    });
    const page = await context.newPage();
    page.on("console", (msg) => {
      if (msg.type() === "error") r.consoleErrors.push(`${msg.text()} @ ${JSON.stringify(msg.location())}`);
    });
    page.on("pageerror", (err) => r.pageErrors.push(String(err && err.stack ? err.stack : err)));
    page.on("requestfailed", (req) => {
      if (isLocal(req.url())) r.failedLocal.push(`${req.url()} (${req.failure()?.errorText})`);
    });
    page.on("response", (res) => {
      if (isLocal(res.url()) && res.status() >= 400) r.failedLocal.push(`${res.url()} (HTTP ${res.status()})`);
    });
    const shot = (suffix) => path.join(cfg.outDir, `${name.replace(/\//g, "__")}-${width}${suffix}.png`);
    try {
      await page.goto(cfg.base + name + ".html", { waitUntil: "load", timeout: 60000 });

      // MathJax: the page's math elements, each typeset (pages without maths load no MathJax).
      const nMath = await page.evaluate(() => document.querySelectorAll(".math").length);
      if (nMath > 0) {
        await waitFor(page, () => window.MathJax && window.MathJax.startup && window.MathJax.startup.promise, 30000);
        await page.evaluate(() => window.MathJax.startup.promise);
        await waitFor(page, () => [...document.querySelectorAll(".math")].every((e) => e.querySelector("mjx-container")), 30000);
      }
      r.math = await page.evaluate(() => {
        const els = [...document.querySelectorAll(".math")];
        const main = document.querySelector("main") || document.body;
        return {
          elements: els.length,
          containers: document.querySelectorAll("mjx-container").length,
          untypeset: els.filter((e) => !e.querySelector("mjx-container")).map((e) => e.textContent.slice(0, 80)),
          merrors: [...document.querySelectorAll("mjx-merror")].map((e) => e.textContent.slice(0, 80)),
          rawDollar: main.innerText.includes("$$"),
          fontsLoaded: performance.getEntriesByType("resource").filter((e) => /mathjax\/output\/chtml\/fonts\//.test(e.name)).map((e) => e.name.split("/").pop()),
          mathjaxVersion: window.MathJax && window.MathJax.version ? window.MathJax.version : null,
        };
      });

      // Widgets: every view script gets a rendered .widget-subarea holding .jupyter-widgets DOM.
      const nViews = await page.evaluate(() => document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length);
      const rendered = () => [...document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')]
        .every((s) => s.previousElementSibling && s.previousElementSibling.classList.contains("widget-subarea")
          && s.previousElementSibling.querySelector(".jupyter-widgets"));
      if (nViews > 0) await waitFor(page, rendered, 30000);
      r.widgets = await page.evaluate(() => {
        const views = [...document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')];
        const ok = views.filter((s) => s.previousElementSibling && s.previousElementSibling.classList.contains("widget-subarea")
          && s.previousElementSibling.querySelector(".jupyter-widgets"));
        return {
          views: views.length,
          rendered: ok.length,
          sliders: document.querySelectorAll(".widget-subarea .widget-slider").length,
          images: document.querySelectorAll(".widget-subarea img").length,
          manager: typeof window.require === "function" && !!document.querySelector('script[src*="html-manager/embed-amd.js"]'),
        };
      });

      // Images: wait until every <img> has finished, then check each decoded.
      await waitFor(page, () => [...document.images].every((i) => i.complete), 30000);
      r.images = await page.evaluate(() => ({
        total: document.images.length,
        broken: [...document.images].filter((i) => !(i.complete && i.naturalWidth > 0)).map((i) => i.src.slice(0, 100)),
      }));
      r.layout = await page.evaluate(measureLayout);
      r.colab = await page.evaluate(() => [...document.querySelectorAll('a[href^="https://colab.research.google.com/"]')]
        .map((a) => a.href));

      if (cfg.navPages.includes(name)) r.nav = await checkNavigation(page, width);

      // The kernel-free widget: move the first slider, the visible figure must change.
      if (name === cfg.sliderPage && width === widths[0] && r.widgets.views > 0) {
        const box = page.locator(".widget-subarea").filter({ has: page.locator(".widget-slider") }).first();
        await box.scrollIntoViewIfNeeded();
        const visibleSrc = () => box.evaluate((el) => [...el.querySelectorAll("img")]
          .filter((i) => i.offsetParent !== null && i.getBoundingClientRect().width > 0).map((i) => i.src));
        const label = () => box.evaluate((el) => [...el.querySelectorAll(".widget-readout")].map((e) => e.textContent.trim()));
        const before = await visibleSrc();
        const labelsBefore = await label();
        await box.screenshot({ path: path.join(cfg.outDir, "widget-before.png") });
        const handle = box.locator(".noUi-handle").first();
        await handle.focus();
        await page.keyboard.press("ArrowRight");
        await page.keyboard.press("ArrowRight");
        await page.waitForTimeout(500);
        const after = await visibleSrc();
        const labelsAfter = await label();
        await box.screenshot({ path: path.join(cfg.outDir, "widget-after.png") });
        r.slider = { before, after, labelsBefore, labelsAfter };
      }

      // The dashboard on a touch screen: tap a token of a top context, its activation must show.
      if (name === cfg.dashboardPage && narrow) {
        const token = page.locator(".widget-html-content [data-act]").filter({ visible: true }).first();
        if (await token.count()) {
          await token.scrollIntoViewIfNeeded();
          await token.tap();
          await page.waitForTimeout(200);
          r.tap = await token.evaluate((e) => ({ act: e.dataset.act, shown: getComputedStyle(e, "::after").content }));
          await page.locator(".widget-subarea").filter({ has: token }).first().screenshot({ path: shot("-dashboard-tap") });
        } else {
          r.tap = { act: null, shown: null };
        }
      }

      // The screenshots show the page, not a tooltip left on the last button tapped.
      await page.evaluate(() => { document.activeElement?.blur?.(); window.scrollTo(0, 0); });
      await page.mouse.move(1, 1);
      await page.waitForTimeout(200);
      await page.screenshot({ path: shot("") });
      if ((cfg.fullWidths || []).includes(width)) {
        await page.screenshot({ path: shot("-full"), fullPage: true });
      }
      r.screenshot = shot("");

      // Dark mode, as the OS would ask for it; the theme follows prefers-color-scheme.
      await page.emulateMedia({ colorScheme: "dark" });
      await waitFor(page, () => document.documentElement.dataset.theme === "dark", 5000);
      r.contrast = await page.evaluate(measureContrast);
      await page.screenshot({ path: shot("-dark") });
      if (r.widgets.views > 0 && (cfg.fullWidths || []).includes(width) && narrow) {
        await page.screenshot({ path: shot("-dark-full"), fullPage: true });
      }
    } catch (err) {
      r.pageErrors.push(`driver: ${err && err.stack ? err.stack : err}`);
    }
    await context.close();
    r.ms = Date.now() - started;
  }
}
// The search page: results for searchQuery, with their snippets' text.
if (cfg.searchQuery) {
  const context = await browser.newContext({ viewport: { width: widths[0], height: 900 } });
  await context.route("**/*", (route) => (isLocal(route.request().url()) ? route.continue() : route.abort("blockedbyclient")));
  const page = await context.newPage();
  const search = { query: cfg.searchQuery, results: 0, snippets: [], errors: [] };
  page.on("pageerror", (err) => search.errors.push(String(err)));
  try {
    await page.goto(`${cfg.base}search.html?q=${encodeURIComponent(cfg.searchQuery)}`, { waitUntil: "load", timeout: 60000 });
    await waitFor(page, () => document.querySelectorAll("#search-results li p.context").length >= 3
      && !document.querySelector("#search-progress")?.textContent.includes("Preparing"), 30000);
    await page.waitForTimeout(1000);
    Object.assign(search, await page.evaluate(() => ({
      results: document.querySelectorAll("#search-results li").length,
      snippets: [...document.querySelectorAll("#search-results li p.context")].map((p) => p.textContent),
    })));
  } catch (err) {
    search.errors.push(`driver: ${err}`);
  }
  results.__search__ = search;
  await context.close();
}
await browser.close();
process.stdout.write(JSON.stringify(results));
