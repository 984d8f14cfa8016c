// Headless-Chromium check of the built book, driven by tests/test_browser.py (which serves
// _build/html on loopback and asserts on the JSON this prints).
//
//   node tests/browser_check.mjs '{"base": "http://127.0.0.1:PORT/", "pages": ["book/intro", ...],
//        "executable": "/usr/bin/chromium", "outDir": "artifacts/screenshots",
//        "sliderPage": "notebooks/01_superposition"}'
//
// For every page: console errors and uncaught exceptions; every request that leaves loopback
// (answered by aborting it, and recorded); local requests that fail or answer >= 400; MathJax
// (every .math element typeset into an mjx-container, no mjx-merror, no raw "$$" left in the
// text); every <img> loaded (naturalWidth > 0); every embedded widget view rendered. On
// sliderPage it moves the first widget's slider with the keyboard and records the visible image
// before and after. Screenshots (full page; the widget before and after) go to outDir.
import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";

const cfg = JSON.parse(process.argv[2]);
fs.mkdirSync(cfg.outDir, { recursive: true });

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

const results = {};
for (const name of cfg.pages) {
  const r = {
    consoleErrors: [], pageErrors: [], external: [], failedLocal: [], math: null, images: null,
    widgets: null, slider: null, colab: [], screenshot: null,
  };
  results[name] = r;
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
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

    // The kernel-free widget: move the first slider, the visible figure must change.
    if (name === cfg.sliderPage && r.widgets.views > 0) {
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

    // The launch button: a Colab link to this chapter's notebook in the page header.
    r.colab = await page.evaluate(() => [...document.querySelectorAll('a[href^="https://colab.research.google.com/"]')]
      .map((a) => a.href));
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.waitForTimeout(200);
    await page.screenshot({ path: path.join(cfg.outDir, name.replace(/\//g, "__") + "-top.png") });

    const file = path.join(cfg.outDir, name.replace(/\//g, "__") + ".png");
    await page.screenshot({ path: file, fullPage: true });
    r.screenshot = file;
  } catch (err) {
    r.pageErrors.push(`driver: ${err && err.stack ? err.stack : err}`);
  }
  await context.close();
}
await browser.close();
process.stdout.write(JSON.stringify(results));
