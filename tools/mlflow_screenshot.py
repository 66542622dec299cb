"""The README's MLflow screenshot: a finished study's evaluation runs in the MLflow UI, grouped
by method, as a person would set the page up (real `mlflow server`, real headless Chromium,
driven over the DevTools protocol).

    python tools/mlflow_screenshot.py --output runs/fashion_mnist --png docs/img/mlflow_runs.png
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import aiohttp

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars"]
# One noise setting's evaluation runs: few enough that the page holds them all.
FILTER = (
    "tags.`redistill.role` = 'trial' AND params.phase != 'search' "
    "AND params.`noise.kind` = 'confident_wrong'"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, timeout: float = 120) -> bytes:
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read()
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.5)


class Page:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws, self.next_id = ws, 0

    async def call(self, method: str, **params) -> dict:
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            message = await self.ws.receive_json()
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def js(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def wait_for(self, pattern: str, timeout: float = 60) -> None:
        """Wait until the page's text matches the regular expression ``pattern``."""
        script = f"new RegExp({json.dumps(pattern)}).test(document.body.innerText)"
        deadline = time.time() + timeout
        while not await self.js(script):
            if time.time() > deadline:
                raise TimeoutError(f"the page never showed {pattern!r}")
            await asyncio.sleep(0.5)

    async def click_text(self, text: str, selector: str = "*", timeout: float = 30) -> None:
        """Click, with the mouse, the innermost visible ``selector`` whose text is ``text``."""
        script = f"""(() => {{
            const all = [...document.querySelectorAll({json.dumps(selector)})].filter(e =>
                e.offsetParent !== null && e.textContent.trim() === {json.dumps(text)});
            const inner = all.filter(e => !all.some(o => o !== e && e.contains(o)));
            if (!inner.length) return null;
            inner[0].scrollIntoView({{block: "center"}});
            const r = inner[0].getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2];
        }})()"""
        deadline = time.time() + timeout
        while (at := await self.js(script)) is None:
            if time.time() > deadline:
                raise TimeoutError(f"nothing to click reads {text!r}")
            await asyncio.sleep(0.5)
        await self.click_at(*at)

    async def click_element(self, find: str, what: str, required: bool = True) -> None:
        """Click the centre of the element that the JavaScript expression ``find`` yields."""
        at = await self.js(
            f"(() => {{ const e = {find}; if (!e) return null;"
            " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2];"
            " })()"
        )
        if at is not None:
            await self.click_at(*at)
        elif required:
            raise RuntimeError(f"{what} was not found")

    async def click_at(self, x: float, y: float) -> None:
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.call(
                "Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1
            )
        await asyncio.sleep(0.5)


async def _drive(debug_port: int, page_url: str, png: Path, size: tuple[int, int]) -> None:
    base = f"http://127.0.0.1:{debug_port}"
    async with aiohttp.ClientSession() as session:
        async with session.put(f"{base}/json/new?{urllib.parse.quote(page_url, safe='')}") as r:
            target = await r.json(content_type=None)
        async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            page = Page(ws)
            await page.call(
                "Emulation.setDeviceMetricsOverride",
                width=size[0],
                height=size[1],
                deviceScaleFactor=1,
                mobile=False,
            )
            await page.call("Page.enable")
            await page.call("Page.reload")
            await page.wait_for(r"[1-9][0-9]* matching runs")
            await page.click_text("Model training")
            await page.click_element(  # the assistant side panel
                "document.querySelector('button[aria-label=Close]')", "", required=False
            )
            await page.wait_for(r"[1-9][0-9]* matching runs")
            await page.click_text("Group by", "button")
            await page.click_text("method")
            await page.call("Input.dispatchKeyEvent", type="keyDown", key="Escape")
            await asyncio.sleep(1)
            for _ in range(20):  # every run on the page, so every method has its group
                try:
                    await page.click_text("Load more", timeout=3)
                except TimeoutError:
                    break
                await asyncio.sleep(2)
            # The chart view: the view switch whose icon is the line chart.
            await page.click_element(
                "[...document.querySelectorAll('svg path')].find(e =>"
                " (e.getAttribute('d') || '').startsWith('M1 1v13.25'))?.closest('svg')",
                "the chart view switch",
            )
            await asyncio.sleep(2)
            # Every group on the chart: the eye in the list's header, then "Show all runs".
            await page.click_element(
                "(h => h[1] || h[0])([...document.querySelectorAll('[role=columnheader]')]"
                ".map(c => c.querySelector('button, [role=button], svg')).filter(Boolean))",
                "the visibility switch",
            )
            await page.click_text("Show all runs")
            await page.click_element(
                "[...document.querySelectorAll('input')].find(e =>"
                " /search metric charts/i.test(e.getAttribute('placeholder') || ''))",
                "the chart search box",
            )
            await page.call("Input.insertText", text="test/top1")
            await asyncio.sleep(2)
            # The chart full size, so its legend names every method.
            await page.click_element(
                "(() => { for (const title of [...document.querySelectorAll('*')].filter(e =>"
                " e.children.length === 0 && e.textContent.trim() === 'test/top1' &&"
                " e.tagName !== 'INPUT')) { let card = title;"
                " while (card && card.querySelectorAll('button').length < 2)"
                " card = card.parentElement; if (card) return [...card.querySelectorAll("
                "'button')].at(-2); } return null; })()",
                "the chart's expand button",
            )
            await asyncio.sleep(4)
            shot = await page.call("Page.captureScreenshot", format="png")
            png.write_bytes(base64.b64decode(shot["data"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, help="a finished study's output folder")
    parser.add_argument("--experiment", help="the experiment name (default: the folder's)")
    parser.add_argument("--png", required=True)
    parser.add_argument("--size", default="1400,900")
    parser.add_argument("--filter", default=FILTER, help="the runs to show (MLflow search syntax)")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("chromium not found")
    output = Path(args.output).resolve()
    store = f"sqlite:///{output / 'mlflow.db'}"
    from mlflow import MlflowClient

    name = args.experiment or output.name
    experiment = MlflowClient(tracking_uri=store).get_experiment_by_name(name)
    if experiment is None:
        sys.exit(f"{store}: no experiment {name!r} (use --experiment)")
    port, debug_port = _free_port(), _free_port()
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store),
            *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    profile = tempfile.mkdtemp(prefix="redistill-shot-")
    browser = None
    try:
        _wait(f"http://127.0.0.1:{port}/health")
        browser = subprocess.Popen(
            [
                *(chromium, *FLAGS, f"--user-data-dir={profile}"),
                *(f"--remote-debugging-port={debug_port}", "about:blank"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait(f"http://127.0.0.1:{debug_port}/json/version")
        query = urllib.parse.urlencode({"searchFilter": args.filter})
        page = f"http://127.0.0.1:{port}/#/experiments/{experiment.experiment_id}/runs?{query}"
        width, height = (int(v) for v in args.size.split(","))
        asyncio.run(_drive(debug_port, page, Path(args.png), (width, height)))
    finally:
        for proc in (browser, server):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)
        shutil.rmtree(profile, ignore_errors=True)
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
